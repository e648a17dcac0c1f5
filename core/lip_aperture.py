"""How far apart the lips are: the signed vertical gap of the inner-lip landmarks and the mesh's
true lip aperture.

On FLAME's 68-point embedding the straight-line distance between landmarks 62 and 66 is not a
lip gap: with the mouth closed, 66 sits about 3.5 mm *above* 62 (the lips' inner surfaces
overlap in height), so an opening first makes that distance shrink. Two measures replace it:

* ``vertical_gap``: y(62) - y(66) of the displacements in the template frame (Y up), in
  metres, so 0 is the rest pose and every opening counts positively.
* ``aperture``: the smallest distance between the upper and the lower lip's surfaces near the
  midline (within ``MIDLINE_HALF_WIDTH`` of it), vertex-to-triangle both ways, and 0 where the
  two surfaces cross (``lips_cross``). The lips are the two sides of FLAME's mouth opening (a
  hole in the mesh), told apart by which edge of the opening a vertex reaches first along the
  surface.

``remove_opening`` takes a share of the vertical gap out of a landmark track, where the lips
must meet (pauses, p/b/m seals). numpy only (runs inside stock Blender and in the evaluation
tools alike).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import flame

MIDLINE_HALF_WIDTH = 0.010     # metres either side of the midline (mouth is ~48 mm wide)
OPENING_SPREAD = 2e-4          # remove_opening: a clip's gap must vary this much (RMS, metres) to learn its pattern
LIP_DEPTH = 0.030              # surface distance from the mouth opening that still counts as lip
# how the evaluations (tools/evaluate.py, tools/evaluate_real.py) read a vertical gap, in mm
OPEN_MM = 2.0                  # clearly open: lips shut where the teacher's gap is over this are wrongly shut
SHUT_MM = 0.5                  # shut


def vertical_gap(landmark_displacements: np.ndarray) -> np.ndarray:
    """Signed inner-lip opening (..., ) in metres from (..., 68, 3) template-frame displacements."""
    d = np.asarray(landmark_displacements)
    return d[..., 62, 1] - d[..., 66, 1]


def remove_opening(landmarks: np.ndarray, weights: np.ndarray, press: np.ndarray | None = None) -> np.ndarray:
    """A (T, 68, 3) landmark track with a share ``weights`` (T,) in [0, 1] of each frame's lip
    opening taken out; everything else (rounding, a smile) is kept. Used where the lips must
    meet: audible pauses (core.voice_activity) and p/b/m seals (core.lip_seal). ``press`` (T,)
    metres: the gap is taken that much further, below closed (lips pressed together).

    The opening is measured as the signed inner-lip gap g (``vertical_gap``) and removed along
    the clip's own opening pattern u: the least-squares motion of the jaw and lip landmarks per
    unit of gap over the frames where the lips part, beside a constant pose (so gap(u) = 1, and
    a frame keeps (1 - w) of its gap). Taking the pattern from the clip follows how this network
    opens this voice's mouth (jaw and lips together) with no stored basis. Pressed lips (g < 0)
    stay.
    """
    w = np.asarray(weights, np.float64)
    press = np.zeros(len(w)) if press is None else np.asarray(press, np.float64)
    if len(w) != len(landmarks) or len(press) != len(landmarks):
        raise ValueError(f"{len(w)} weights and {len(press)} presses for {len(landmarks)} frames")
    if not (w.any() or press.any()):
        return landmarks
    d = np.asarray(landmarks, np.float64)
    g = np.maximum(vertical_gap(d), 0.0)
    mouth = list(flame.MOUTH_LANDMARKS)
    parted = g > 0
    gc = g[parted] - g[parted].mean() if parted.sum() >= 2 else np.zeros(0)
    norm = float(np.dot(gc, gc))
    if not len(gc) or norm < len(gc) * OPENING_SPREAD ** 2:
        # the lips barely move (a steady tone, a held pose): the pattern would be noise, up to
        # centimetres of landmark motion per millimetre of gap, and there is no opening to take out
        return landmarks
    # affine fit d = c + g u over the frames where the lips part: the constant c (a held smile,
    # the network's idle pose) is not part of the opening
    dm = d[parted][:, mouth]
    u = np.einsum("t,tkc->kc", gc, dm - dm.mean(axis=0)) / norm
    out = np.array(landmarks, copy=True)
    out[:, mouth] -= ((w * g + press)[:, None, None] * u[None]).astype(out.dtype)
    return out


@dataclass(frozen=True)
class LipSurfaces:
    upper: np.ndarray            # vertex indices of the upper lip near the midline
    lower: np.ndarray
    upper_faces: np.ndarray      # (F, 3) triangles of each lip near the midline
    lower_faces: np.ndarray
    upper_edges: np.ndarray      # (E, 2) edges of those triangles
    lower_edges: np.ndarray
    mouth_loop: np.ndarray       # vertex indices of the mouth opening, in order


def boundary_loops(faces: np.ndarray) -> list:
    """Closed loops of boundary edges (FLAME's mouth opening is one), each as ordered vertex indices."""
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    u, c = np.unique(e, axis=0, return_counts=True)
    nbr: dict = {}
    for a, b in u[c == 1]:
        nbr.setdefault(int(a), []).append(int(b))
        nbr.setdefault(int(b), []).append(int(a))
    loops, seen = [], set()
    for start in nbr:
        if start in seen:
            continue
        loop, prev, cur = [start], None, start
        seen.add(start)
        while True:
            nxt = [n for n in nbr[cur] if n != prev]
            if not nxt or nxt[0] == start or nxt[0] in seen:
                break
            prev, cur = cur, nxt[0]
            seen.add(cur)
            loop.append(cur)
        loops.append(np.array(loop))
    return loops


def _edges(faces: np.ndarray) -> np.ndarray:
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return np.unique(np.sort(e, axis=1), axis=0)


def _surface_distance(vertices, faces, sources) -> np.ndarray:
    """Dijkstra along mesh edges from a set of source vertices (heapq: no scipy in Blender)."""
    e = _edges(faces)
    w = np.linalg.norm(vertices[e[:, 0]] - vertices[e[:, 1]], axis=1)
    adj: list = [[] for _ in range(len(vertices))]
    for (a, b), length in zip(e.tolist(), w.tolist()):
        adj[a].append((b, length))
        adj[b].append((a, length))
    dist = np.full(len(vertices), np.inf)
    heap = [(0.0, int(s)) for s in sources]
    for _, s in heap:
        dist[s] = 0.0
    heapq.heapify(heap)
    while heap:
        d, a = heapq.heappop(heap)
        if d > dist[a] or d > LIP_DEPTH * 2:
            continue
        for b, length in adj[a]:
            nd = d + length
            if nd < dist[b]:
                dist[b] = nd
                heapq.heappush(heap, (nd, b))
    return dist


@lru_cache(maxsize=1)
def lip_surfaces() -> LipSurfaces:
    """The two lips near the midline, found once on the template (vertex indices hold for every head)."""
    topo = flame.load_topology()
    v = topo.template.astype(np.float64)
    L = topo.landmarks(v)
    loop = min(boundary_loops(topo.faces), key=lambda lp: np.linalg.norm(v[lp].mean(0) - L[60:68].mean(0)))
    i_left, i_right = int(np.argmin(v[loop, 0])), int(np.argmax(v[loop, 0]))
    a, b = sorted((i_left, i_right))
    half1, half2 = loop[a + 1:b], np.concatenate([loop[b + 1:], loop[:a]])
    upper_edge, lower_edge = (half1, half2) if v[half1, 1].mean() > v[half2, 1].mean() else (half2, half1)
    du = _surface_distance(v, topo.faces, upper_edge)
    dl = _surface_distance(v, topo.faces, lower_edge)
    near_mid = np.abs(v[:, 0] - 0.5 * (L[48, 0] + L[54, 0])) < MIDLINE_HALF_WIDTH
    upper = np.flatnonzero(near_mid & (du < dl) & (du < LIP_DEPTH))
    lower = np.flatnonzero(near_mid & (dl < du) & (dl < LIP_DEPTH))
    in_u, in_l = np.zeros(len(v), bool), np.zeros(len(v), bool)
    in_u[upper], in_l[lower] = True, True
    upper_faces, lower_faces = topo.faces[in_u[topo.faces].all(axis=1)], topo.faces[in_l[topo.faces].all(axis=1)]
    return LipSurfaces(upper=upper, lower=lower, upper_faces=upper_faces, lower_faces=lower_faces,
                       upper_edges=_edges(upper_faces), lower_edges=_edges(lower_faces), mouth_loop=loop)


def _point_triangle_distance(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """(P, F) distances from points (P, 3) to triangles (F, 3, 3) (closest point, all regions)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    ab, ac = b - a, c - a
    n = np.cross(ab, ac)
    nn = np.maximum((n * n).sum(-1), 1e-30)
    ap = p[:, None, :] - a[None]
    # projection onto the plane, barycentric coordinates of the projection
    t = (ap * n[None]).sum(-1) / nn[None]
    proj = ap - t[..., None] * n[None]
    d00, d01, d11 = (ab * ab).sum(-1), (ab * ac).sum(-1), (ac * ac).sum(-1)
    d20, d21 = (proj * ab[None]).sum(-1), (proj * ac[None]).sum(-1)
    den = np.maximum(d00 * d11 - d01 * d01, 1e-30)
    v = (d11 * d20 - d01 * d21) / den
    w = (d00 * d21 - d01 * d20) / den
    inside = (v >= 0) & (w >= 0) & (v + w <= 1)
    best = np.where(inside, np.abs(t) * np.sqrt(nn)[None], np.inf)
    for s, e in ((a, b), (b, c), (c, a)):      # outside the face: nearest point on an edge
        se = e - s
        sp = p[:, None, :] - s[None]
        u = np.clip((sp * se[None]).sum(-1) / np.maximum((se * se).sum(-1), 1e-30)[None], 0.0, 1.0)
        best = np.minimum(best, np.linalg.norm(sp - u[..., None] * se[None], axis=-1))
    return best


def _segments_cross_triangles(p0: np.ndarray, p1: np.ndarray, tri: np.ndarray) -> bool:
    """Whether any segment p0[i]-p1[i] (E, 3) passes through any triangle (F, 3, 3) (Moller-Trumbore)."""
    a = tri[:, 0]
    e1, e2 = (tri[:, 1] - a)[None], (tri[:, 2] - a)[None]
    d = (p1 - p0)[:, None, :]
    h = np.cross(d, e2)
    det = (e1 * h).sum(-1)
    ok = np.abs(det) > 1e-18                         # a segment parallel to the plane does not cross it
    inv = 1.0 / np.where(ok, det, 1.0)
    s = p0[:, None, :] - a[None]
    u = (s * h).sum(-1) * inv
    q = np.cross(s, e1)
    v = (d * q).sum(-1) * inv
    t = (e2 * q).sum(-1) * inv
    return bool((ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t >= 0) & (t <= 1)).any())


def lips_cross(vertices: np.ndarray) -> bool:
    """Whether the upper and lower lip surfaces near the midline pass through each other in one
    (5023, 3) frame: an edge of one lip crosses a triangle of the other. FLAME's lips do at rest
    (the closed template's lips overlap), and so do lips pressed together: they touch."""
    s = lip_surfaces()
    f = np.asarray(vertices, np.float64)
    return (_segments_cross_triangles(f[s.upper_edges[:, 0]], f[s.upper_edges[:, 1]], f[s.lower_faces])
            or _segments_cross_triangles(f[s.lower_edges[:, 0]], f[s.lower_edges[:, 1]], f[s.upper_faces]))


def aperture(vertices: np.ndarray) -> np.ndarray:
    """Smallest distance between the upper and lower lip surfaces near the midline, per frame;
    0 where they cross (``lips_cross``: a vertex-to-surface distance would read lips pressed
    past each other as up to a millimetre apart, from vertices on the far side).

    ``vertices``: (5023, 3) or (T, 5023, 3) FLAME-topology vertices (any identity, metres or the
    mesh's units). Returns a float or (T,) array in the same units.
    """
    s = lip_surfaces()
    v = np.asarray(vertices, np.float64)
    frames = v[None] if v.ndim == 2 else v
    out = np.empty(len(frames))
    for i, f in enumerate(frames):
        if lips_cross(f):
            out[i] = 0.0
            continue
        d1 = _point_triangle_distance(f[s.upper], f[s.lower_faces]).min()
        d2 = _point_triangle_distance(f[s.lower], f[s.upper_faces]).min()
        out[i] = min(d1, d2)
    return out[0] if v.ndim == 2 else out
