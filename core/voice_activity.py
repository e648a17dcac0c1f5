"""Voice activity: where the face rests, whatever the networks predict.

Two rules, both from the recording itself:

* ``gate``: digital silence. The networks were trained on speech; on long stretches of
  silence they may still drift (up to several millimetres on 10 s of zeros). A frame is
  *active* when the recording has energy near it: the RMS of some 10 ms hop within ``HOLD_S``
  of the frame is above ``THRESHOLD`` (-60 dBFS, the level under which the add-on calls a clip
  silent). Away from activity the displacements fade linearly to exactly zero over ``FADE_S``,
  so lips close smoothly at the end of a line and open ahead of its first sound (speakers move
  before they are heard). The gate is computed on the recording before loudness normalisation
  and applied by the pipeline to every path (whole clip, streamed blocks, compact and
  per-frame bakes alike).
* ``pause_weights``: audible pauses. A real recording is never digitally silent (room noise,
  breaths), yet speakers close the mouth when they stop talking. A frame is in a pause when the
  recording stays ``PAUSE_DB`` under its own speech level (95th percentile of the frame levels,
  so a noise floor does not matter) for ``PAUSE_MIN_S`` or more. The corpus teacher puts the
  mouth's opening at rest there (core.corpus.articulation.rest_in_pauses) and the pipeline does
  the same to S2L's output (core.lip_aperture.remove_opening), so on voices unlike the training
  voices, where the network drifts towards a half-open mean, the lips still close in pauses.
"""

from __future__ import annotations

import numpy as np

from .audio import frame_level_db, frame_rms

THRESHOLD = 1e-3      # RMS, -60 dBFS
HOP_S = 0.01
HOLD_S = 0.1          # full motion this close to sound
FADE_S = 0.15         # then down to rest over this long
PAUSE_DB = 20.0       # audible pause: quieter than the recording's loud frames by this much
PAUSE_MIN_S = 0.12    # ... for at least this long


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


def pause_weights(samples: np.ndarray, rate: int, fps: float, num_frames: int) -> np.ndarray:
    """(num_frames,) in [0, 1]: 1 inside audible pauses, 0.5 on their edge frames, 0 elsewhere."""
    db = frame_level_db(samples, rate, fps, num_frames)
    if db.size == 0:
        return np.zeros(0)
    quiet = np.concatenate([[0], (db < np.percentile(db, 95) - PAUSE_DB).astype(np.int8), [0]])
    edges = np.diff(quiet)
    w = np.zeros(num_frames)
    run_min = max(2, int(np.ceil(PAUSE_MIN_S * fps)))
    for i, j in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):   # quiet runs [i, j)
        if j - i >= run_min:
            w[i:j] = 1.0
            w[i] = w[j - 1] = 0.5          # the lips are still closing / already opening
    return w
