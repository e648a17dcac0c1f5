"""Evaluation metrics of the paper (LE, DE, DAE) plus the widely used LVE, in numpy.

Inputs are displacement sequences (T, K, 3) in metres: K = 68 landmarks or 5023 vertices.
  LE  - lip error: per frame the max L2 error over lip points, averaged over frames (m).
  DE  - displacement error: mean L2 norm of the displacement error over points and frames (m).
  DAE - displacement angle error: mean angle between predicted and true displacement vectors
        (degrees), over the vectors where both are longer than ``min_norm``; undefined (NaN)
        when there are none, e.g. for a static prediction.
  LVE - lip vertex error (FaceFormer/VOCA): per frame the max SQUARED L2 error over lip points,
        averaged over frames (m^2); ``lve_mm`` is its square root in millimetres.
"""

from __future__ import annotations

import numpy as np

from . import flame


def lip_error(pred, target, lips) -> float:
    err = np.linalg.norm(np.asarray(pred)[:, lips] - np.asarray(target)[:, lips], axis=-1)
    return float(err.max(axis=1).mean())


def displacement_error(pred, target) -> float:
    return float(np.linalg.norm(np.asarray(pred) - np.asarray(target), axis=-1).mean())


def displacement_angle_error(pred, target, min_norm: float = 1e-5) -> float:
    p, t = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    np_, nt = np.linalg.norm(p, axis=-1), np.linalg.norm(t, axis=-1)
    ok = (np_ > min_norm) & (nt > min_norm)
    if not ok.any():
        return float("nan")
    cos = (p * t).sum(-1)[ok] / (np_[ok] * nt[ok])
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).mean())


def lip_vertex_error(pred, target, lips) -> float:
    sq = ((np.asarray(pred)[:, lips] - np.asarray(target)[:, lips]) ** 2).sum(-1)
    return float(sq.max(axis=1).mean())


def evaluate(pred, target, lips=None) -> dict:
    """LE, DE, DAE and LVE for one pair of displacement sequences (T, K, 3).

    ``lips`` defaults to landmarks 48-67 for K = 68 and to the template's lip region for 5023.
    """
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and target {target.shape} differ in shape")
    if lips is None:
        k = pred.shape[1]
        if k == flame.NUM_LANDMARKS:
            lips = list(flame.LIP_LANDMARKS)
        elif k == flame.NUM_VERTICES:
            lips = flame.load_topology().regions["lips"]
        else:
            raise ValueError(f"no default lip points for {k} points; pass lips=")
    lve = lip_vertex_error(pred, target, lips)
    return {
        "LE": lip_error(pred, target, lips),
        "DE": displacement_error(pred, target),
        "DAE": displacement_angle_error(pred, target),
        "LVE": lve,
        "lve_mm": float(np.sqrt(lve) * 1000.0),
        "frames": int(pred.shape[0]),
    }


def evaluate_dense_and_landmarks(pred, target) -> dict:
    """The paper's table for one pair of dense displacement sequences (T, 5023, 3): metrics on
    the 68 landmarks (taken through the landmark embedding) and on all vertices."""
    topo = flame.load_topology()
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    return {"landmarks": evaluate(topo.landmarks(pred), topo.landmarks(target)),
            "dense": evaluate(pred, target)}
