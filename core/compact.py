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
# Frames used to find the basis (at most 1500, spread evenly: 90 MB on FLAME); the weights and
# the error check always use every frame, so a long clip at worst needs a component or two more.
MAX_FIT_FRAMES = 1500


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


def sample_frames(total: int) -> np.ndarray:
    """Indices of the frames the basis is fitted on: all of them, or MAX_FIT_FRAMES spread evenly."""
    if total <= MAX_FIT_FRAMES:
        return np.arange(total)
    return np.unique(np.linspace(0, total - 1, MAX_FIT_FRAMES).round().astype(np.int64))


def _max_vertex_error(d: np.ndarray, w: np.ndarray, v: np.ndarray, chunk: int = 256,
                      limit: float = np.inf) -> float:
    """max_t,i |d_t,i - (w_t @ v)_i| over (T, 3N) rows, in float64 chunks to bound memory.

    Stops early once the error exceeds ``limit`` (the value returned then is only known to be
    above it): the bisection below needs the comparison, not the figure."""
    worst = 0.0
    for s in range(0, len(d), chunk):
        r = w[s:s + chunk] @ v
        np.subtract(d[s:s + chunk], r, out=r)       # d - w v, d promoted to float64 as before
        worst = max(worst, _max_norm(r))
        if worst > limit:
            break
    return worst


def _max_norm(r: np.ndarray, rows: int = 8) -> float:
    """max over rows and vertices of the Euclidean norm of (rows, 3N) float64 residuals.

    Equal, bit for bit, to ``np.sqrt((r.reshape(len(r), -1, 3) ** 2).sum(-1)).max()``: the same
    squares, summed x + y then + z as numpy's reduction does, and the square root of the
    largest sum is the largest square root (sqrt is correctly rounded, so monotonic). A few rows
    at a time, so the temporaries stay in cache."""
    worst = 0.0
    sq = np.empty((min(rows, len(r)), r.shape[1]))
    for s in range(0, len(r), rows):
        block = r[s:s + rows]
        q = np.multiply(block, block, out=sq[:len(block)])
        total = q[:, 0::3] + q[:, 1::3]
        total += q[:, 2::3]
        worst = max(worst, float(total.max(initial=0.0)))
    return float(np.sqrt(worst))


def _principal_directions(sample: np.ndarray, kmax: int, chunk: int = 1024):
    """Leading right singular vectors (kmax, 3N) of the (S, 3N) sample and their singular values.

    Through the small (S, S) Gram matrix, accumulated in float64 over column chunks, so memory is
    the float32 sample plus O(S^2 + kmax * 3N) whatever the clip length; then re-orthonormalised.
    """
    s_rows, width = sample.shape
    gram = np.zeros((s_rows, s_rows))
    for c in range(0, width, chunk):
        block = sample[:, c:c + chunk].astype(np.float64)
        gram += block @ block.T
    evals, evecs = np.linalg.eigh(gram)
    order = np.argsort(evals)[::-1]
    sing = np.sqrt(np.clip(evals[order], 0.0, None))
    if not sing.size or sing[0] == 0:
        v = np.zeros((1, width))
        v[0, 0] = 1.0
        return v, np.zeros(1)
    # The Gram matrix squares the conditioning: trust singular values down to 1e-7 of the largest.
    rank = int((sing > sing[0] * 1e-7).sum())
    k = max(1, min(kmax, rank))
    u = evecs[:, order[:k]] / sing[:k]
    v = np.empty((k, width))
    for c in range(0, width, chunk):
        v[:, c:c + chunk] = u.T @ sample[:, c:c + chunk].astype(np.float64)
    q, r = np.linalg.qr(v.T)        # same nested spans, orthonormal to float64 precision
    q *= np.sign(np.diag(r))[None, :]
    return q.T, sing[:k]


def fit_compact_stream(sample: np.ndarray, blocks, total: int, tolerance: float,
                       max_components: int = 64, progress=None) -> CompactBasis:
    """The compact basis of a clip that is never held in memory as a whole.

    ``sample``: (S, N, 3) displacements of the frames ``sample_frames(total)``; the basis is
    their leading principal directions (uncentred, so zero motion stays exactly zero), the
    candidate size the smallest that meets ``tolerance`` on the sample. ``blocks()``: an
    iterator over (first_frame, (n, N, 3) block) covering all ``total`` frames in order; one
    pass computes every frame's weights and the exact max vertex error of a few candidate sizes
    at once, with the float32 values that will be stored. The smallest candidate within
    ``tolerance`` is kept, else the largest (and its measured error is the bound).
    """
    if not tolerance > 0:
        raise ValueError("tolerance must be positive")
    sample = np.asarray(sample)
    if sample.ndim != 3 or sample.shape[-1] != 3 or len(sample) == 0 or total < 1:
        raise ValueError(f"displacements must be (T, N, 3) with T >= 1, got {sample.shape}")
    n = sample.shape[1]
    flat = sample.reshape(len(sample), -1).astype(np.float32, copy=False)
    vt, sing = _principal_directions(flat, max_components)
    kmax = len(vt)
    if sing[0] == 0:
        ladder = [1]
    else:  # smallest k within tolerance on the sample (error is non-increasing in k): bisect
        w_sample = flat.astype(np.float64) @ vt.T if flat.nbytes < 64e6 else None

        def within(k):   # is the sample's error with k components within tolerance?
            if w_sample is not None:
                return _max_vertex_error(flat, w_sample[:, :k], vt[:k], limit=tolerance) <= tolerance
            for s in range(0, len(flat), 256):
                rows = flat[s:s + 256]
                if _max_vertex_error(rows, rows.astype(np.float64) @ vt[:k].T, vt[:k], limit=tolerance) > tolerance:
                    return False
            return True

        lo, hi = 1, kmax
        if within(hi):
            while lo < hi:
                mid = (lo + hi) // 2
                if within(mid):
                    hi = mid
                else:
                    lo = mid + 1
        # On the whole clip the estimate may fall short: measure a few larger sizes as well.
        ladder = sorted({min(kmax, hi + extra) for extra in (0, 1, 2, 4, 8, 16)} | {kmax})
    v32 = vt.astype(np.float32).astype(np.float64)   # the basis as stored (scaling below is exact)
    weights = np.empty((total, kmax), np.float32)
    worst = dict.fromkeys(ladder, 0.0)
    seen = 0
    for first, block in _regroup(blocks(), 256):
        d = np.asarray(block).reshape(len(block), -1).astype(np.float64)
        w32 = (d @ vt.T).astype(np.float32)
        weights[first:first + len(block)] = w32
        w = w32.astype(np.float64)
        r, done = d, 0
        for k in ladder:              # residual of k components = residual of fewer minus the rest
            r -= w[:, done:k] @ v32[done:k]
            done = k
            # A size already over tolerance is never chosen (only the largest is, when none is
            # within, and then its measured error is the bound): its error need not be known.
            if worst[k] <= tolerance or k == ladder[-1]:
                worst[k] = max(worst[k], _max_norm(r))
        seen += len(block)
        if progress:
            progress(seen / total)
    if seen != total:
        raise ValueError(f"the blocks held {seen} frames, expected {total}")
    k = next((k for k in ladder if worst[k] <= tolerance), ladder[-1])
    # Scale each component by a power of two so its weights lie in [-1, 1] (Blender's slider
    # range): exact in floating point, so the error measured above is that of the stored values.
    peak = np.abs(weights[:, :k]).max(axis=0).astype(np.float64)
    scale = np.where(peak > 0, 2.0 ** np.ceil(np.log2(np.where(peak > 0, peak, 1.0))), 1.0)
    weights32 = (weights[:, :k] / scale.astype(np.float32)).astype(np.float32)
    basis32 = (vt[:k].astype(np.float32) * scale[:, None].astype(np.float32)).reshape(k, n, 3)
    e = worst[k]
    return CompactBasis(basis=basis32, weights=weights32, max_error=float(e),
                        tolerance=float(tolerance), bound_met=bool(e <= tolerance))


def _regroup(blocks, rows: int):
    """(first, block) pairs re-cut into blocks of about ``rows`` frames (fewer, larger matmuls)."""
    pending, first = [], None
    for start, block in blocks:
        if first is None:
            first = start
        pending.append(np.asarray(block))
        if sum(len(b) for b in pending) >= rows:
            yield first, np.concatenate(pending)
            pending, first = [], None
    if pending:
        yield first, np.concatenate(pending)


def fit_compact(displacements: np.ndarray, tolerance: float, max_components: int = 64) -> CompactBasis:
    """Smallest PCA basis (uncentred, so zero motion stays exactly zero) within ``tolerance``."""
    d = np.asarray(displacements)
    if d.ndim != 3 or d.shape[-1] != 3 or len(d) == 0:
        raise ValueError(f"displacements must be (T, N, 3) with T >= 1, got {d.shape}")
    if not tolerance > 0:
        raise ValueError("tolerance must be positive")
    def blocks():
        for s in range(0, len(d), 256):
            yield s, d[s:s + 256]

    return fit_compact_stream(d[sample_frames(len(d))], blocks, len(d), tolerance, max_components)
