"""Voice-activity gate: in digital silence the face rests, whatever the networks predict.

The networks were trained on speech; on long stretches of silence they may still drift (up to
several millimetres on 10 s of zeros). A frame is *active* when the recording has energy near
it: the RMS of some 10 ms hop within ``HOLD_S`` of the frame is above ``THRESHOLD`` (-60 dBFS,
the level under which the add-on calls a clip silent). Away from activity the displacements
fade linearly to exactly zero over ``FADE_S``, so lips close smoothly at the end of a line and
open ahead of its first sound (speakers move before they are heard). The gate is computed on
the recording before loudness normalisation and applied by the pipeline to every path (whole
clip, streamed blocks, compact and per-frame bakes alike).
"""

from __future__ import annotations

import numpy as np

from .audio import frame_rms

THRESHOLD = 1e-3      # RMS, -60 dBFS
HOP_S = 0.01
HOLD_S = 0.1          # full motion this close to sound
FADE_S = 0.15         # then down to rest over this long


def gate(samples: np.ndarray, rate: int, fps: float, num_frames: int) -> np.ndarray:
    """(num_frames,) float32 in [0, 1]: 1 near sound, 0 in silence, linear fade in between."""
    x = np.asarray(samples, np.float32)
    hop = max(1, int(round(HOP_S * rate)))
    n = len(x) // hop
    if n == 0:
        active_t = np.zeros(0)
    else:
        rms = frame_rms(x[:n * hop], hop)
        active_t = (np.flatnonzero(rms > THRESHOLD) + 0.5) * hop / rate   # centres of active hops
        if len(x) > n * hop and np.sqrt(np.mean(np.square(x[n * hop:], dtype=np.float64))) > THRESHOLD:
            active_t = np.append(active_t, (n * hop + (len(x) - n * hop) / 2) / rate)
    if active_t.size == 0:
        return np.zeros(num_frames, np.float32)
    t = np.arange(num_frames, dtype=np.float64) / fps      # frame i shows time i / fps
    j = np.searchsorted(active_t, t)
    before = np.abs(t - active_t[np.clip(j - 1, 0, len(active_t) - 1)])
    after = np.abs(active_t[np.clip(j, 0, len(active_t) - 1)] - t)
    distance = np.minimum(before, after)
    return np.clip(1.0 - (distance - HOLD_S) / FADE_S, 0.0, 1.0).astype(np.float32)
