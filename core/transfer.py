"""Motion transfer: carry FLAME's dense motion to every vertex of a head of any topology.

After ``core.registration`` has fitted the FLAME template to the user's head, each user vertex
is bound to the closest point of the fitted FLAME surface: a FLAME triangle and barycentric
coordinates (``Correspondence``, plain arrays, so the add-on can store it on the object). Every
frame, a user vertex moves as that surface point moves: the barycentric mix of the three FLAME
vertex displacements.

The lips need care: with the mouth closed the upper and lower lips touch, so the closest FLAME
point of a vertex at the slit may lie on the wrong lip, and that vertex would then move with the
other lip (tearing the user's lip when the mouth opens, or gluing the slit when it closes).
Every template vertex of the lips is labelled upper or lower once, by the same jaw field the
articulation teacher moves the jaw with (``tools/build_lip_sides.py``). A user vertex
near the lips takes the side of the lip it is clearly nearer to; where both are about equally
near (the lips touch, or the user's mesh fuses them) its side is diffused from the sure
vertices over its own mesh (``SIDE_SWEEPS`` smoothing sweeps of a score, each vertex's own
nearness counting ``SIDE_EVIDENCE``), so it follows the lip its sheet of the mesh leads to. A
score that moves smoothly with the fit, rather than a front grown vertex by vertex from
thresholded seeds, keeps a small change of the fitted surface from flipping a whole patch at
the mouth corners (docs/eval/transfer.md). It then binds only to its own lip, so the slit
opens and closes as in FLAME's motion.

Parts of the user's mesh far from any FLAME surface (hair, hat, shoulders) get a weight that
fades to zero between ``FALLOFF_MM``: they stay still instead of following a far-away point.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import flame, surface
from .errors import TopologyError

FALLOFF_MM = (10.0, 25.0)   # full weight within the first, none beyond the second (FLAME scale)
SURE_MM = 3.0               # a user vertex this much nearer one lip than the other is sure of its side
SIDE_SWEEPS = 400           # smoothing sweeps that carry the sure vertices' sides over the unsure ones
SIDE_EVIDENCE = 0.02        # weight of an unsure vertex's own nearness against its neighbours'
FREE, UPPER, LOWER = 0, 1, 2


@dataclass
class Correspondence:
    triangles: np.ndarray      # (N,) int32: FLAME triangle of each user vertex
    barycentric: np.ndarray    # (N, 3) float32
    weights: np.ndarray        # (N,) float32 in [0, 1]: how much of the motion the vertex takes
    distance_mm: np.ndarray    # (N,) float32: distance to the fitted FLAME surface (FLAME scale)
    lip_side: np.ndarray       # (N,) int8: FREE / UPPER / LOWER

    @property
    def num_vertices(self) -> int:
        return len(self.triangles)

    def to_arrays(self) -> dict:
        return {"triangles": self.triangles, "barycentric": self.barycentric, "weights": self.weights,
                "distance_mm": self.distance_mm, "lip_side": self.lip_side}

    @classmethod
    def from_arrays(cls, arrays: dict) -> "Correspondence":
        tri = np.asarray(arrays["triangles"], np.int32).ravel()
        bary = np.asarray(arrays["barycentric"], np.float32).reshape(-1, 3)
        n = len(tri)
        weights = np.asarray(arrays.get("weights", np.ones(n)), np.float32).ravel()
        dist = np.asarray(arrays.get("distance_mm", np.zeros(n)), np.float32).ravel()
        side = np.asarray(arrays.get("lip_side", np.zeros(n)), np.int8).ravel()
        if len(bary) != n or len(weights) != n or len(dist) != n or len(side) != n:
            raise TopologyError("The stored correspondence is inconsistent (array lengths differ): register the head again.")
        if n and (tri.min() < 0 or tri.max() >= flame.NUM_FACES):
            raise TopologyError("The stored correspondence names triangles FLAME does not have: register the head again.")
        return cls(tri, bary, weights, dist, side)


# --- FLAME's lips (template, cached) -------------------------------------------------------------

@lru_cache(maxsize=1)
def lip_labels():
    """(vertex side (5023,), triangle side (9976,)) on FLAME: UPPER / LOWER on the lips, FREE elsewhere.

    The vertex sides are the articulation teacher's jaw split (tools/build_lip_sides.py), so they
    match the motion the networks produce. A triangle belongs to a lip when none of its corners
    is on the other one."""
    topo = flame.load_topology()
    with np.load(flame.ASSETS / "lip_sides.npz") as data:
        label = data["vertex_side"].astype(np.int8)
    tl = label[topo.faces]
    tri_label = np.full(len(topo.faces), FREE, np.int8)
    tri_label[(tl == UPPER).any(1) & ~(tl == LOWER).any(1)] = UPPER
    tri_label[(tl == LOWER).any(1) & ~(tl == UPPER).any(1)] = LOWER
    return label, tri_label


@lru_cache(maxsize=2)
def lip_masks(own: int):
    """(vertex mask, triangle mask) of lip ``own``'s side of FLAME: no vertex of the other lip and no
    triangle touching it (not even those joining the lips at the mouth corners: a fitted template
    sits a millimetre or so off along the surface there, and a corner vertex bound across the
    join would take the other lip's motion; measured in docs/eval/transfer.md)."""
    label, _ = lip_labels()
    other = LOWER if own == UPPER else UPPER
    return label != other, ~(label[flame.load_topology().faces] == other).any(1)


@lru_cache(maxsize=1)
def _template_rings():
    topo = flame.load_topology()
    return surface.triangle_rings(topo.faces.astype(np.int64), flame.NUM_VERTICES, rings=2)


# --- binding ----------------------------------------------------------------------------------

def _edges(triangles: np.ndarray) -> np.ndarray:
    e = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    return np.unique(np.sort(e, axis=1), axis=0)


def _diffuse_side(score: np.ndarray, unsure: np.ndarray, edges: np.ndarray,
                  sweeps: int = SIDE_SWEEPS, evidence: float = SIDE_EVIDENCE) -> np.ndarray:
    """Lip side score (> 0 upper) of every vertex: sure vertices keep theirs (clipped to +-1);
    each unsure one becomes the mean of its neighbours' pulled a little (``evidence``) towards
    its own, sweep after sweep (Jacobi steps of a membrane with the sure vertices fixed). The
    result moves smoothly with the distances it starts from, so its sign flips only where the
    two sides meet."""
    own = np.clip(score, -1.0, 1.0)
    x = own.copy()
    a, b = edges[:, 0], edges[:, 1]
    n = len(x)
    degree = np.bincount(a, minlength=n) + np.bincount(b, minlength=n)
    denom = degree + evidence
    for _ in range(sweeps):
        total = np.bincount(a, weights=x[b], minlength=n) + np.bincount(b, weights=x[a], minlength=n)
        x = np.where(unsure, (total + evidence * own) / denom, x)
    return x


def bind(user_vertices: np.ndarray, user_faces, registration, sure_mm: float = SURE_MM) -> Correspondence:
    """Correspondence of each user vertex (user frame) to the fitted FLAME surface.

    ``user_faces``: anything ``surface.polygons_to_triangles`` takes (the mesh connectivity
    settles which lip the vertices at the slit belong to)."""
    topo = flame.load_topology()
    faces = topo.faces.astype(np.int64)
    rings = _template_rings()
    pts = registration.similarity.to_canonical(np.asarray(user_vertices, np.float64))
    fit = registration.fitted_canonical
    label, tri_label = lip_labels()
    n = len(pts)
    tri, bary, dist = surface.closest_points(pts, fit, faces, rings)
    side = np.full(n, FREE, np.int8)
    corner_labels = label[faces]
    lip = np.flatnonzero((corner_labels[tri] != FREE).any(1))
    if len(lip):
        # Closest point on each lip separately (triangles with no corner on the other lip).
        per = {own: surface.closest_points(pts[lip], fit, faces, rings, *lip_masks(own)) for own in (UPPER, LOWER)}
        d_up, d_lo = per[UPPER][2], per[LOWER][2]
        # +-1 or beyond: sure of its side. Where the lips touch (FLAME's even overlap a little
        # at rest) both are near: those vertices take the side their own mesh leads them to.
        score = (d_lo - d_up) / (sure_mm / 1000.0)
        tris_user, _ = surface.polygons_to_triangles(user_faces)
        slot = np.full(n, -1, np.int64)
        slot[lip] = np.arange(len(lip))
        e = slot[_edges(tris_user)]
        e = e[(e >= 0).all(1)]                  # edges between lip vertices only
        score = _diffuse_side(score, np.abs(score) < 1.0, e)
        lip_side = np.where(score >= 0, UPPER, LOWER).astype(np.int8)
        for own in (UPPER, LOWER):
            rows = lip_side == own
            tri[lip[rows]] = per[own][0][rows]
            bary[lip[rows]] = per[own][1][rows]
            dist[lip[rows]] = per[own][2][rows]
        side[lip] = lip_side
    d_mm = dist * 1000.0
    lo, hi = FALLOFF_MM
    weights = np.clip((hi - d_mm) / (hi - lo), 0.0, 1.0)
    return Correspondence(tri.astype(np.int32), bary.astype(np.float32), weights.astype(np.float32),
                          d_mm.astype(np.float32), side)


# --- per-frame transfer -----------------------------------------------------------------------

def transfer(displacements: np.ndarray, correspondence: Correspondence, similarity=None) -> np.ndarray:
    """(T, 5023, 3) FLAME displacements -> (T, N, 3) displacements of the user's vertices.

    ``displacements`` are in the user's frame (what ``Animator.animate`` returns for the fitted
    template), or in the canonical frame when ``similarity`` (user -> canonical) is given: then
    they are rotated and scaled into the user's frame here."""
    d = np.asarray(displacements, np.float32)
    if d.ndim == 2:
        d = d[None]
    if d.shape[1:] != (flame.NUM_VERTICES, 3):
        raise TopologyError(f"Expected FLAME displacements of shape (T, {flame.NUM_VERTICES}, 3), got {d.shape}.")
    faces = flame.load_topology().faces
    corners = faces[correspondence.triangles]                       # (N, 3)
    w = (correspondence.barycentric * correspondence.weights[:, None]).astype(np.float32)
    out = np.empty((len(d), correspondence.num_vertices, 3), np.float32)
    for k, frame in enumerate(d):
        if similarity is not None:
            frame = similarity.displacements_from_canonical(frame).astype(np.float32)
        out[k] = np.einsum("nk,nkc->nc", w, frame[corners])
    return out


def jaw_motion(fitted: np.ndarray, displacements: np.ndarray) -> np.ndarray:
    """(T, 4, 4) rigid motions of the lower jaw (user frame) for lower teeth and tongue.

    A rigid fit (no scale) of the chin skin from rest to each frame: the chin is where FLAME's
    skin rides on the mandible with the least soft-tissue sliding."""
    topo = flame.load_topology()
    v = topo.template.astype(np.float64)
    lmk = topo.landmarks(v)
    chin = np.flatnonzero((v[:, 1] < lmk[57, 1] - 0.008) & (v[:, 1] > lmk[8, 1] - 0.01)
                          & (np.abs(v[:, 0]) < 0.025) & (v[:, 2] > lmk[8, 2] - 0.015))
    rest = np.asarray(fitted, np.float64)[chin]
    out = np.tile(np.eye(4), (len(displacements), 1, 1))
    mu_r = rest.mean(0)
    a = rest - mu_r
    for k, d in enumerate(np.asarray(displacements, np.float64)):
        moved = rest + d[chin]
        mu_m = moved.mean(0)
        u, _, vt = np.linalg.svd((moved - mu_m).T @ a)
        fix = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
        rot = u @ fix @ vt
        out[k, :3, :3] = rot
        out[k, :3, 3] = mu_m - rot @ mu_r
    return out
