"""Similarity alignment of any FLAME-topology head to the canonical template frame.

The networks learn motion in the template's frame (metres, Y up, face looking +Z). A user's
head may be in centimetres, Z-up, rotated or moved; we fit ``canonical = s R x + t`` on the
landmarks speech does not move (brows, nose, eyes - never mouth or jaw, whose rest pose varies)
and map predicted displacements back with the inverse linear part, ``d_user = R^T d / s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import flame
from .errors import TopologyError


@dataclass(frozen=True)
class Similarity:
    scale: float
    rotation: np.ndarray     # (3, 3), proper rotation (det +1)
    translation: np.ndarray  # (3,)

    def to_canonical(self, points: np.ndarray) -> np.ndarray:
        return self.scale * points @ self.rotation.T + self.translation

    def from_canonical(self, points: np.ndarray) -> np.ndarray:
        return ((points - self.translation) @ self.rotation) / self.scale

    def displacements_to_canonical(self, d: np.ndarray) -> np.ndarray:
        return self.scale * d @ self.rotation.T

    def displacements_from_canonical(self, d: np.ndarray) -> np.ndarray:
        """Motion predicted in the template frame, expressed in the user's frame and units."""
        return (d @ self.rotation) / self.scale


def fit_similarity(source: np.ndarray, target: np.ndarray) -> Similarity:
    """Least-squares s, R, t with target ~ s R source + t (Umeyama 1991)."""
    src = np.asarray(source, np.float64)
    dst = np.asarray(target, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    var_s = (a ** 2).sum() / len(a)
    if var_s <= 1e-30:
        raise TopologyError("Cannot align the head: its reference landmarks all coincide.")
    cov = b.T @ a / len(a)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # a reflection is not a valid head pose
        fix[2, 2] = -1.0
    rot = u @ fix @ vt
    scale = float((sig * np.diag(fix)).sum() / var_s)
    return Similarity(scale, rot, mu_d - scale * rot @ mu_s)


def align_to_template(neutral_vertices: np.ndarray) -> Similarity:
    """Similarity taking a user's neutral head onto the canonical template."""
    topo = flame.load_topology()
    idx = list(flame.STABLE_LANDMARKS)
    user = topo.landmarks(np.asarray(neutral_vertices, np.float64))[idx]
    template = topo.landmarks(topo.template.astype(np.float64))[idx]
    return fit_similarity(user, template)
