"""The paper's training losses (Eqs. 2-9), in torch.

All operate on displacements from the neutral pose, shaped (B, T, K, 3) for S2L (K = 68)
and (B, K, 3) for S2D (K = 5023). The lambda defaults are the paper's.

Units. The paper gives the lambdas but not the unit the losses are computed in. Speech
displacements are about 0.1-3 mm, so in metres the squared-error terms are ~1e-8 while
1e-4 * cosine is ~1e-4: the cosine term, meant as a small regulariser, then outweighs the
others in value and in gradient by about 10^4, and the fit of magnitudes (and the stillness
of vertices that should not move, whose cosine gradient is zero) is left to noise. The
combined objectives therefore take displacements in millimetres by default (``unit=1e-3``
metres per loss unit), where the lambdas give the balance their names suggest; ``unit=1.0``
reproduces the metre convention. The single-term functions are unit-free: they see what
they are given.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import flame

MILLIMETRE = 1e-3   # metres per loss unit (see the module docstring)
LOSS_UNITS = {"mm": MILLIMETRE, "m": 1.0}


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every coordinate."""
    return ((pred - target) ** 2).mean()


def mouth_loss(pred: torch.Tensor, target: torch.Tensor, mouth=flame.MOUTH_LANDMARKS) -> torch.Tensor:
    """Reconstruction restricted to the mouth: lower jaw contour (5-12) and lips (48-67)."""
    idx = list(mouth)
    return ((pred[..., idx, :] - target[..., idx, :]) ** 2).mean()


def velocity_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error of frame-to-frame motion (time is dim 1): keeps the motion smooth."""
    return (((pred[:, 1:] - pred[:, :-1]) - (target[:, 1:] - target[:, :-1])) ** 2).mean()


def cosine_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """The paper's Cosine Loss: mean of 1 - cos(angle) between predicted and true motion vectors."""
    return (1.0 - F.cosine_similarity(pred, target, dim=-1, eps=eps)).mean()


def weighted_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-vertex squared error weighted by w_v (sum 1), summed over vertices, mean over the rest."""
    per_vertex = (pred - target) ** 2                     # (B, V, 3)
    return torch.einsum("v,bvc->bc", weights.to(pred.dtype), per_vertex).mean()


def vertex_weights(min_distance: float = 1e-3) -> np.ndarray:
    """S2D's w_v = 1 / (distance from vertex v to its nearest landmark), normalised to sum 1.

    Distances are clamped at ``min_distance`` (1 mm) so vertices lying on a landmark do not get
    an unbounded weight.
    """
    d = np.maximum(flame.load_topology().landmark_distances(), min_distance)
    w = 1.0 / d
    return (w / w.sum()).astype(np.float32)


def lip_gap_loss(pred: torch.Tensor, target: torch.Tensor, closure_weight: float = 4.0,
                 closed_below: float = 0.5, open_weight: float = 1.0, open_above: float = 6.0,
                 brief_closure_weight: float | None = None, brief_open_above: float = 2.0,
                 brief_frames: int = 5, seal_weight: float = 0.0, seal_frames: int = 1,
                 false_closure_weight: float = 0.0) -> torch.Tensor:
    """Squared error of the signed inner-lip gap (y of landmark 62 minus y of 66; see
    core.lip_aperture), with frames whose target gap is under ``closed_below`` (a closure, in
    the loss unit) weighted ``closure_weight`` times, and frames whose target gap is over
    ``open_above`` (an open vowel's peak) weighted ``open_weight`` times.

    ``brief_closure_weight`` (None: the same as ``closure_weight``) weights the closures inside
    speech: closed frames with a target gap over ``brief_open_above`` within ``brief_frames``
    frames on either side. These are the p/b/m seals, a few frames between open vowels, which a
    network misses far more often than the long closures of pauses.

    ``seal_weight`` prices a brief closure the prediction never reaches: at each such frame, how
    far the smallest predicted gap within ``seal_frames`` frames on either side stays above the
    target. A network unsure of a seal's exact frame hedges with a half-open mouth over all of
    them, which the per-frame error barely punishes; this term asks it to commit to a seal
    somewhere near the right time (as a viewer, and `tools/evaluate_real.py`, judge it).

    ``false_closure_weight`` prices the opposite mistake, a closure the target never makes: at
    each frame where the target gap stays over ``brief_open_above`` for ``seal_frames`` frames on
    either side, how far the predicted gap falls under ``brief_open_above``. Heavy closure and
    seal weights teach a network to close wherever it cannot tell a tongue consonant (t, n, s, k)
    from a p/b/m; this term makes such a closure cost as much as a missed seal.

    Not in the paper. The mouth loss averages over 28 points, so a BiLSTM that regresses towards
    the mean (narrow openings, closures approached but not sealed) pays little for it; this term
    prices exactly the two extremes a viewer reads: how wide the mouth opens, and whether the
    lips meet at p/b/m.
    """
    gap_p = pred[..., 62, 1] - pred[..., 66, 1]
    gap_t = target[..., 62, 1] - target[..., 66, 1]
    closed = (gap_t < closed_below).to(pred.dtype)
    w = 1.0 + (closure_weight - 1.0) * closed + (open_weight - 1.0) * (gap_t > open_above).to(pred.dtype)
    reweight = brief_closure_weight is not None and brief_closure_weight != closure_weight
    if seal_weight or reweight:
        brief = brief_closures(gap_t, closed_below, brief_open_above, brief_frames)
    if reweight:
        w = w + (brief_closure_weight - closure_weight) * brief
    loss = (w * (gap_p - gap_t) ** 2).mean()
    if seal_weight:
        nearest = -_window_max(-gap_p, seal_frames)
        loss = loss + seal_weight * (brief * torch.relu(nearest - gap_t) ** 2).mean()
    if false_closure_weight:
        held_open = (-_window_max(-gap_t, seal_frames) > brief_open_above).to(pred.dtype)
        loss = loss + false_closure_weight * (held_open * torch.relu(brief_open_above - gap_p) ** 2).mean()
    return loss


def _window_max(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, T) the largest value of (B, T) ``x`` within ``frames`` frames on either side (the clip's
    ends not padded with anything that could win)."""
    return torch.nn.functional.max_pool1d(x.reshape(-1, 1, x.shape[-1]), 2 * frames + 1, stride=1,
                                          padding=frames).reshape(x.shape)


def brief_closures(gap_t: torch.Tensor, closed_below: float = 0.5, open_above: float = 2.0,
                   frames: int = 5) -> torch.Tensor:
    """(B, T) 1 where the target gap (B, T) is closed (under ``closed_below``) with an opening
    over ``open_above`` within ``frames`` frames on either side: the lip seals inside speech
    (p/b/m), as opposed to the long closures of pauses; 0 elsewhere."""
    around = _window_max(gap_t, frames)
    return ((gap_t < closed_below) & (around > open_above)).to(gap_t.dtype)


def seal_detection_loss(logits: torch.Tensor, target: torch.Tensor, positive_weight: float = 10.0,
                        unit: float = MILLIMETRE) -> torch.Tensor:
    """Binary cross-entropy of S2L's seal head (B, T logits) against the target's lip seals
    (``brief_closures`` of (B, T, 68, 3) target displacements given in ``unit`` metres).

    Not in the paper. Regression alone hedges a seal it is unsure of with a half-open mouth; a
    classifier says how likely a seal is, and core.lip_seal closes the lips where it is likely.
    Seals are ~3 % of frames: ``positive_weight`` keeps the head from learning "never"."""
    return F.binary_cross_entropy_with_logits(logits, seal_labels(target, unit),
                                              pos_weight=logits.new_tensor(positive_weight))


def seal_labels(target: torch.Tensor, unit: float = MILLIMETRE) -> torch.Tensor:
    """(B, T) the seal head's labels: ``brief_closures`` of (B, T, 68, 3) target displacements
    given in ``unit`` metres."""
    return brief_closures((target[..., 62, 1] - target[..., 66, 1]) * (unit / MILLIMETRE))


def s2l_loss(pred, target, rec=0.1, mouth=1.0, cosine=1e-4, velocity=10.0, gap=0.0,
             unit: float = MILLIMETRE, gap_weights: dict | None = None, seal=0.0,
             seal_logits: torch.Tensor | None = None, seal_positive_weight: float = 10.0) -> tuple[torch.Tensor, dict]:
    """S2L objective: 0.1 rec + 1 mouth + 1e-4 cosine + 10 velocity (+ ``gap`` lip-gap term,
    off by default as in the paper; + ``seal`` times the seal head's loss on ``seal_logits``),
    on metres / ``unit``. ``gap_weights``: lip_gap_loss's closure / open-peak weights
    (thresholds in mm whatever the unit)."""
    pred, target = pred / unit, target / unit
    parts = {
        "rec": reconstruction_loss(pred, target),
        "mouth": mouth_loss(pred, target),
        "cosine": cosine_loss(pred, target),
        "velocity": velocity_loss(pred, target),
    }
    if gap:
        gw = {"closed_below": 0.5, "open_above": 6.0, "brief_open_above": 2.0, **(gap_weights or {})}
        for key in ("closed_below", "open_above", "brief_open_above"):   # given in mm, compared in the loss unit
            gw[key] = gw[key] * MILLIMETRE / unit
        parts["gap"] = lip_gap_loss(pred, target, **gw)
    total = rec * parts["rec"] + mouth * parts["mouth"] + cosine * parts["cosine"] + velocity * parts["velocity"]
    if gap:
        total = total + gap * parts["gap"]
    if seal and seal_logits is not None:
        parts["seal"] = seal_detection_loss(seal_logits, target, seal_positive_weight, unit)
        total = total + seal * parts["seal"]
    return total, {k: float(v.detach()) for k, v in parts.items()}


def s2d_loss(pred, target, weights, rec=0.1, cosine=1e-4, weighted=1.0,
             unit: float = MILLIMETRE) -> tuple[torch.Tensor, dict]:
    """S2D objective: 0.1 rec + 1e-4 cosine + 1 weighted, on metres / ``unit``."""
    pred, target = pred / unit, target / unit
    parts = {
        "rec": reconstruction_loss(pred, target),
        "cosine": cosine_loss(pred, target),
        "weighted": weighted_loss(pred, target, weights),
    }
    total = rec * parts["rec"] + cosine * parts["cosine"] + weighted * parts["weighted"]
    return total, {k: float(v.detach()) for k, v in parts.items()}
