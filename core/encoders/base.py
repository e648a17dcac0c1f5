"""The encoder interface and long-audio chunking shared by all encoders."""

from __future__ import annotations

import numpy as np

SAMPLES_PER_FRAME = 320  # 16 kHz / 50 Hz


class SpeechEncoder:
    name = "base"
    rate = 50.0
    dim = 0
    # Audio per call, and context kept on each side, so memory stays bounded on long clips.
    chunk_seconds = 30.0
    context_seconds = 2.0

    def frames(self, samples16k: np.ndarray) -> np.ndarray:
        """(T, dim) frames of a short clip in one call."""
        raise NotImplementedError

    def features(self, samples16k: np.ndarray) -> np.ndarray:
        """(T, dim) frames for any length; long clips are encoded in overlapping chunks."""
        x = np.asarray(samples16k, np.float32)
        total = max(1, len(x) // SAMPLES_PER_FRAME)
        chunk = int(self.chunk_seconds * self.rate)
        if total <= chunk + 2 * int(self.context_seconds * self.rate):
            return _fit(self.frames(x), total)
        ctx = int(self.context_seconds * self.rate)
        out = np.empty((total, self.dim), np.float32)
        for start in range(0, total, chunk):
            stop = min(total, start + chunk)
            a, b = max(0, start - ctx), min(total, stop + ctx)
            piece = _fit(self.frames(x[a * SAMPLES_PER_FRAME:b * SAMPLES_PER_FRAME]), b - a)
            out[start:stop] = piece[start - a:stop - a]
        return out


def _fit(frames: np.ndarray, n: int) -> np.ndarray:
    """Trim or edge-pad to exactly n frames (encoders may round their length differently)."""
    if len(frames) >= n:
        return frames[:n]
    pad = np.repeat(frames[-1:], n - len(frames), axis=0) if len(frames) else np.zeros((n, frames.shape[1]), frames.dtype)
    return np.concatenate([frames, pad])
