"""Compact bake: a small PCA basis of displacement shapes plus per-frame weights (numpy only).

Per-frame baking stores one shape key per frame, which is exact but grows with the clip
(a 10-minute clip at 30 fps is 18,000 keys). Speech motion lives in a low-dimensional space,
so the compact mode stores K basis shapes B_k and per-frame weights w_tk with

    displacement_t  ~=  sum_k  w_tk * B_k

The error bound is stated per vertex, in the mesh's own units: the largest Euclidean distance
between a reconstructed and a predicted vertex over every frame of the clip is measured
exactly (not estimated) and is guaranteed to be <= ``tolerance`` unless ``max_components``
runs out first, in which case the measured maximum is what is reported as the bound.

Weights are rescaled per component to lie in [-1, 1] (the basis absorbs the scale), because
Blender clamps shape-key values to their slider range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# 0.1 mm on a FLAME-sized head: well below what anyone can see on a face.
DEFAULT_TOLERANCE_M = 1e-4
# FLAME template bounding-box diagonal is about 0.32 m; tolerances scale with the user's head.
FLAME_DIAGONAL_M = 0.32
# Frames used to find the basis; the weights and the error check always use every frame.
MAX_FIT_FRAMES = 3000


@dataclass
class CompactBasis:
    basis: np.ndarray     # (K, N, 3) float32 displacement shapes, mesh units
    weights: np.ndarray   # (T, K) float32, each column within [-1, 1]
    max_error: float      # measured max over frames and vertices of |reconstruction - input|
    tolerance: float      # what was asked for
    bound_met: bool       # max_error <= tolerance

    @property
    def num_components(self) -> int:
        return int(self.basis.shape[0])

    @property
    def bound(self) -> float:
        """The error bound to state to the user: the tolerance, or the measured error if larger."""
        return float(max(self.tolerance, self.max_error))

    def reconstruct(self, frames=None) -> np.ndarray:
        w = self.weights if frames is None else self.weights[frames]
        k, n, _ = self.basis.shape
        return (w.astype(np.float64) @ self.basis.reshape(k, -1).astype(np.float64)).reshape(len(w), n, 3)


def default_tolerance(neutral_vertices: np.ndarray) -> float:
    """0.1 mm scaled by the head's size relative to FLAME (so a head in cm gets 0.01 cm)."""
    v = np.asarray(neutral_vertices, np.float64)
    diagonal = float(np.linalg.norm(v.max(axis=0) - v.min(axis=0)))
    return DEFAULT_TOLERANCE_M * diagonal / FLAME_DIAGONAL_M


def _max_vertex_error(d: np.ndarray, w: np.ndarray, v: np.ndarray, chunk: int = 512) -> float:
    """max_t,i |d_t,i - (w_t @ v)_i| over (T, 3N) rows, in chunks to bound memory."""
    worst = 0.0
    for s in range(0, len(d), chunk):
        r = d[s:s + chunk] - w[s:s + chunk] @ v
        worst = max(worst, float(np.sqrt((r.reshape(len(r), -1, 3) ** 2).sum(-1)).max(initial=0.0)))
    return worst


def fit_compact(displacements: np.ndarray, tolerance: float, max_components: int = 64) -> CompactBasis:
    """Smallest PCA basis (uncentred, so zero motion stays exactly zero) within ``tolerance``."""
    d = np.asarray(displacements, np.float64)
    if d.ndim != 3 or d.shape[-1] != 3 or len(d) == 0:
        raise ValueError(f"displacements must be (T, N, 3) with T >= 1, got {d.shape}")
    if not tolerance > 0:
        raise ValueError("tolerance must be positive")
    t, n, _ = d.shape
    flat = d.reshape(t, -1)
    fit_rows = flat if t <= MAX_FIT_FRAMES else flat[np.linspace(0, t - 1, MAX_FIT_FRAMES).round().astype(int)]
    # Right singular vectors = principal directions; only the leading ones are ever used.
    _, s, vt = np.linalg.svd(fit_rows, full_matrices=False)
    rank = int((s > s[0] * 1e-10).sum()) if s.size and s[0] > 0 else 0
    kmax = max(1, min(max_components, rank if rank else 1))
    vt = vt[:kmax]
    w_all = flat @ vt.T                                    # orthonormal rows: projection = weights

    # Smallest k meeting the tolerance; the error is non-increasing in k, so bisect.
    def err(k):
        return _max_vertex_error(flat, w_all[:, :k], vt[:k])

    if rank == 0:
        k, e = 1, 0.0
    else:
        lo, hi = 1, kmax
        e_hi = err(hi)
        if e_hi > tolerance:
            k, e = hi, e_hi
        else:
            errors = {hi: e_hi}
            while lo < hi:
                mid = (lo + hi) // 2
                errors[mid] = err(mid)
                if errors[mid] <= tolerance:
                    hi = mid
                else:
                    lo = mid + 1
            k, e = hi, errors.get(hi, err(hi))

    basis = vt[:k].copy()
    weights = w_all[:, :k].copy()
    scale = np.abs(weights).max(axis=0)
    scale[scale == 0] = 1.0
    weights /= scale
    basis *= scale[:, None]
    basis32 = basis.reshape(k, n, 3).astype(np.float32)
    weights32 = weights.astype(np.float32)
    # Re-measure with the float32 values that will actually be stored.
    e = _max_vertex_error(flat, weights32.astype(np.float64), basis32.reshape(k, -1).astype(np.float64))
    return CompactBasis(basis=basis32, weights=weights32, max_error=float(e),
                        tolerance=float(tolerance), bound_met=bool(e <= tolerance))
