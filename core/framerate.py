"""Linear resampling of speech-encoder frames to the animation frame rate.

The paper resamples wav2vec 2.0's 50 Hz frames to the capture rate by linear interpolation;
we do the same for every encoder and any frame rate (24, 25, 29.97, 30, 60 ...). Frame ``i``
shows the audio at time ``i / fps``; encoder frame ``j`` covers the time ``(j + 0.5) / rate``.
"""

from __future__ import annotations

import math

import numpy as np


def num_frames(duration_seconds: float, fps: float) -> int:
    """Animation frames needed to cover the clip (at least one)."""
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"Frame rate must be a positive number, got {fps!r}.")
    # Tolerate float noise so 10 s at 30 fps is 300 frames, not 301.
    return max(1, math.ceil(duration_seconds * fps - 1e-6))


def interpolation_weights(n_source: int, source_rate: float, n_target: int, fps: float,
                          offset: float = 0.0):
    """Indices (lo, hi) and weight w so target = (1 - w) * src[lo] + w * src[hi].

    Target frame k is at ``offset + k / fps`` seconds of the source's time line (an offset lets
    a chunk of audio cut on the encoder's frame grid serve frames that start between grid points).
    """
    t = offset + np.arange(n_target, dtype=np.float64) / fps  # target frame times
    pos = np.clip(t * source_rate - 0.5, 0.0, n_source - 1)  # fractional source index
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_source - 1)
    return lo, hi, (pos - lo)


def resample_frames(features: np.ndarray, source_rate: float, fps: float, n_target: int,
                    offset: float = 0.0) -> np.ndarray:
    """(T_src, C) features at ``source_rate`` -> (n_target, C) at ``fps`` (numpy)."""
    lo, hi, w = interpolation_weights(len(features), source_rate, n_target, fps, offset)
    w = w[:, None].astype(features.dtype)
    return (1 - w) * features[lo] + w * features[hi]
