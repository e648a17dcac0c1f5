"""Lip seals: the lips meet at p/b/m wherever S2L's seal head says a seal is likely.

Not in the paper. Trained on landmark error alone, S2L hedges a p/b/m it is unsure of with a
half-open mouth (on voices unlike the training voices the lips then stop millimetres short),
and a viewer reads an unsealed /p/ or /m/ at once. A network with ``seal_head`` (core.s2l) also
says, every frame, how likely the teacher's lips are sealed there (core.losses.
seal_detection_loss); this module turns that probability into the share of the opening to take
out (core.lip_aperture.remove_opening): none under ``SEAL_FROM``, all of it from ``SEAL_FULL``,
linear between, so a confident seal closes the lips and an unsure one only narrows them; a full
seal also presses the lips ``PRESS`` together, as the teacher does (a landmark gap of exactly 0
still leaves some meshes' lips a hair apart). As in
"composite and regional facial movements", the lip closure is driven by its own mechanism
while the jaw, rounding and spreading stay the regression's.
"""

from __future__ import annotations

import numpy as np

# Chosen on the main real-speech set (tools/evaluate_real.py; docs/eval/candidates/README.md).
# The head is trained with seals weighted up (4x in the shipped mel, 10x when these were chosen),
# so its probabilities run high: 0.2 is unlikely.
SEAL_FROM = 0.2     # seal probability under which the opening is left alone
SEAL_FULL = 0.4     # ... from which the lips meet
PRESS = 0.001       # metres past closed at a full seal


def probability(logits: np.ndarray) -> np.ndarray:
    """The seal head's logits -> P(sealed), numerically safe for any logit."""
    x = np.asarray(logits, np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def seal_weights(logits: np.ndarray) -> np.ndarray:
    """(T,) share of each frame's lip opening to take out, in [0, 1]."""
    return np.clip((probability(logits) - SEAL_FROM) / (SEAL_FULL - SEAL_FROM), 0.0, 1.0)


def press(logits: np.ndarray) -> np.ndarray:
    """(T,) metres to press the lips past closed: ``PRESS`` at a full seal, less when unsure."""
    return PRESS * seal_weights(logits)
