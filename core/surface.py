"""Triangle surfaces of any mesh: polygons to triangles, area sampling, nearest and closest points.

Numpy only (stock Blender has no scipy). Nearest neighbours are brute force in chunks: the
squared distance |q|^2 - 2 q.p + |p|^2 is a matrix product, which numpy runs at BLAS speed;
at the sizes registration needs (a few thousand x tens of thousands) that beats any
pure-Python tree.
"""

from __future__ import annotations

import numpy as np

from .errors import TopologyError

_CHUNK_ELEMENTS = 12_000_000  # distances held at once (float32: ~48 MB)


def polygons_to_triangles(faces) -> tuple[np.ndarray, np.ndarray]:
    """Fan-triangulate polygons. ``faces``: (F, k) array, a list of index lists, or a
    (loops, loop_start, loop_total) triple as Blender stores them.

    Returns (triangles (M, 3) int64, polygon index of each triangle (M,))."""
    if isinstance(faces, tuple) and len(faces) == 3:
        loops, starts, totals = (np.asarray(a, np.int64) for a in faces)
    elif isinstance(faces, np.ndarray) and faces.ndim == 2:
        f = faces.astype(np.int64)
        totals = np.full(len(f), f.shape[1], np.int64)
        starts = np.arange(len(f), dtype=np.int64) * f.shape[1]
        loops = f.ravel()
    else:
        polys = [np.asarray(p, np.int64).ravel() for p in faces]
        totals = np.array([len(p) for p in polys], np.int64)
        starts = np.concatenate([[0], np.cumsum(totals)[:-1]]) if len(polys) else np.zeros(0, np.int64)
        loops = np.concatenate(polys) if polys else np.zeros(0, np.int64)
    if len(totals) == 0:
        return np.zeros((0, 3), np.int64), np.zeros(0, np.int64)
    if (totals < 3).any():
        raise TopologyError(f"The mesh has {int((totals < 3).sum())} faces with fewer than 3 corners.")
    # Triangle k of polygon p: (first, k+1, k+2), k = 0 .. total-3.
    per = totals - 2
    poly = np.repeat(np.arange(len(totals)), per)
    k = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
    first = starts[poly]
    tris = np.stack([loops[first], loops[first + k + 1], loops[first + k + 2]], axis=1)
    return tris, poly


def triangle_areas_normals(vertices: np.ndarray, triangles: np.ndarray):
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    cross = np.cross(b - a, c - a)
    double_area = np.linalg.norm(cross, axis=1)
    normals = cross / np.maximum(double_area, 1e-30)[:, None]
    return 0.5 * double_area, normals


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    cross = np.cross(b - a, c - a)  # area-weighted
    n = np.zeros_like(vertices)
    for i in range(3):
        np.add.at(n, triangles[:, i], cross)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-30)


def sample_surface(vertices: np.ndarray, triangles: np.ndarray, count: int, seed: int = 0):
    """``count`` points spread over the surface by area (deterministic), with their normals."""
    areas, normals = triangle_areas_normals(vertices, triangles)
    total = areas.sum()
    if not total > 0:
        raise TopologyError("The mesh has no surface area (all faces are degenerate).")
    rng = np.random.default_rng(seed)
    tri = rng.choice(len(triangles), size=count, p=areas / total)
    r1, r2 = rng.random(count), rng.random(count)
    s = np.sqrt(r1)
    bary = np.stack([1 - s, s * (1 - r2), s * r2], axis=1)
    pts = np.einsum("nk,nkc->nc", bary, vertices[triangles[tri]])
    return pts, normals[tri]


def nearest(queries: np.ndarray, points: np.ndarray, mask=None) -> tuple[np.ndarray, np.ndarray]:
    """Index of and distance to the nearest of ``points`` for every query (exact).

    ``mask`` (len(points),) bool: only those points may be chosen. A uniform grid of cells
    about two point spacings wide answers most queries from the 27 cells around them; a query
    whose best candidate is farther than one cell (so a closer point could hide outside) is
    answered by brute force."""
    q = np.asarray(queries, np.float64)
    p = np.asarray(points, np.float64)
    ids = np.arange(len(p))
    if mask is not None:
        ids = np.flatnonzero(mask)
        p = p[ids]
    if len(p) == 0:
        raise ValueError("nearest(): no points to choose from")
    idx = np.empty(len(q), np.int64)
    dist = np.empty(len(q))
    if len(q) * len(p) <= 4_000_000:  # small: one matrix product is cheapest
        i = _brute(q, p)
        return ids[i], np.linalg.norm(q - p[i], axis=1)
    grid = _Grid(p)
    step = 20000
    for s in range(0, len(q), step):
        i, d = grid.query(q[s:s + step])
        idx[s:s + step], dist[s:s + step] = i, d
    return ids[idx], dist


def _brute(q, p):
    centre = p.mean(0)  # centring keeps |q|^2 - 2 q.p + |p|^2 accurate far from the origin
    q, p = q - centre, p - centre
    pp = (p ** 2).sum(1)
    idx = np.empty(len(q), np.int64)
    step = max(1, _CHUNK_ELEMENTS // len(p))
    for s in range(0, len(q), step):
        idx[s:s + step] = np.argmin(pp[None] - 2.0 * (q[s:s + step] @ p.T), axis=1)
    return idx


class _Grid:
    def __init__(self, p: np.ndarray, occupancy: float = 4.0):
        self.p = p
        self.lo = p.min(0)
        extent = max(float(np.ptp(p, axis=0).max()), 1e-12)
        h = extent / max(1.0, np.sqrt(len(p)))
        for _ in range(12):  # a surface fills cells unevenly: aim at a few points per used cell
            cells = np.floor((p - self.lo) / h).astype(np.int64)
            used = len(np.unique(cells[:, 0] * 1_000_003 ** 2 + cells[:, 1] * 1_000_003 + cells[:, 2]))
            occ = len(p) / used
            if occ > 2 * occupancy:
                h /= 1.5
            elif occ < occupancy / 2 and h < extent:
                h *= 1.4
            else:
                break
        self.h = h
        cells = np.floor((p - self.lo) / h).astype(np.int64)
        self.dims = cells.max(0) + 3
        keys = self._key(cells)
        self.order = np.argsort(keys, kind="stable")
        self.ukeys, self.starts, self.counts = np.unique(keys[self.order], return_index=True, return_counts=True)

    def _key(self, cells):
        c = cells + 1
        return (c[..., 0] * self.dims[1] + c[..., 1]) * self.dims[2] + c[..., 2]

    def query(self, q):
        idx, best = self._query(q, 1)
        unsure = (idx < 0) | (best > self.h ** 2)
        if unsure.any():  # a wider block of cells: exact within 2 cell widths
            i2, b2 = self._query(q[unsure], 2)
            idx[unsure] = np.where((i2 >= 0) & (b2 <= (2 * self.h) ** 2), i2, -1)
            unsure = idx < 0
        if unsure.any():
            idx[unsure] = _brute(q[unsure], self.p)
        return idx, np.linalg.norm(q - self.p[idx], axis=1)

    def _query(self, q, r):
        n = len(q)
        cells = np.floor((q - self.lo) / self.h).astype(np.int64)
        cells = np.clip(cells, -1, self.dims - 2)
        span = np.arange(-r, r + 1)
        off = np.stack(np.meshgrid(span, span, span, indexing="ij"), -1).reshape(-1, 3)
        nb = cells[:, None, :] + off[None]                                  # (n, K, 3)
        inside = ((nb >= -1) & (nb <= self.dims - 2)).all(-1)
        keys = self._key(nb)
        pos = np.clip(np.searchsorted(self.ukeys, keys), 0, len(self.ukeys) - 1)
        hit = inside & (self.ukeys[pos] == keys)
        cnt = np.where(hit, self.counts[pos], 0).ravel()
        st = np.where(hit, self.starts[pos], 0).ravel()
        total = int(cnt.sum())
        within = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        cand = self.order[np.repeat(st, cnt) + within]
        owner = np.repeat(np.repeat(np.arange(n), len(off)), cnt)
        d2 = ((q[owner] - self.p[cand]) ** 2).sum(1)
        best = np.full(n, np.inf)
        np.minimum.at(best, owner, d2)
        idx = np.full(n, -1, np.int64)
        is_best = d2 == best[owner]
        # the first candidate reaching the minimum, per query
        first = np.flatnonzero(is_best)
        o, k = np.unique(owner[first], return_index=True)
        idx[o] = cand[first[k]]
        # A hit within r cell widths is exact: anything outside the block is farther.
        return idx, best


def closest_on_triangles(points: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray):
    """Closest point on triangle (a, b, c) to each point (all (N, 3)); returns barycentrics (N, 3).

    Region tests on the vertex, edge and face Voronoi regions (Ericson, Real-Time Collision
    Detection, 5.1.5), vectorised; degenerate triangles fall back to their nearest corner."""
    ab, ac, ap = b - a, c - a, points - a
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    bp = points - b
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    cp = points - c
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    n = len(points)
    out = np.zeros((n, 3))
    done = np.zeros(n, bool)

    def put(mask, w):
        nonlocal done
        m = mask & ~done
        out[m] = w[m] if np.ndim(w) == 2 else w
        done |= m

    with np.errstate(divide="ignore", invalid="ignore"):
        put((d1 <= 0) & (d2 <= 0), np.array([1.0, 0, 0]))
        put((d3 >= 0) & (d4 <= d3), np.array([0, 1.0, 0]))
        put((d6 >= 0) & (d5 <= d6), np.array([0, 0, 1.0]))
        v = d1 / (d1 - d3)
        put((vc <= 0) & (d1 >= 0) & (d3 <= 0), np.stack([1 - v, v, 0 * v], 1))
        w = d2 / (d2 - d6)
        put((vb <= 0) & (d2 >= 0) & (d6 <= 0), np.stack([1 - w, 0 * w, w], 1))
        u = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        put((va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0), np.stack([0 * u, 1 - u, u], 1))
        denom = va + vb + vc
        vv, ww = vb / denom, vc / denom
        put(np.ones(n, bool), np.stack([1 - vv - ww, vv, ww], 1))
    bad = ~np.isfinite(out).all(1)
    if bad.any():  # zero-area triangle: nearest corner
        corners = np.stack([a[bad], b[bad], c[bad]], 1)
        k = np.argmin(np.linalg.norm(corners - points[bad][:, None], axis=2), axis=1)
        out[bad] = np.eye(3)[k]
    return out


def vertex_triangles(triangles: np.ndarray, num_vertices: int) -> np.ndarray:
    """(V, K) padded with -1: the triangles around each vertex."""
    tri_ids = np.repeat(np.arange(len(triangles)), 3)
    verts = triangles.ravel()
    order = np.argsort(verts, kind="stable")
    verts, tri_ids = verts[order], tri_ids[order]
    counts = np.bincount(verts, minlength=num_vertices)
    k = max(1, int(counts.max()))
    out = np.full((num_vertices, k), -1, np.int64)
    pos = np.arange(len(verts)) - np.repeat(np.cumsum(counts) - counts, counts)
    out[verts, pos] = tri_ids
    return out


def triangle_rings(triangles: np.ndarray, num_vertices: int, rings: int = 2) -> np.ndarray:
    """(V, K) padded with -1: triangles within ``rings`` triangle-rings of each vertex."""
    vt = vertex_triangles(triangles, num_vertices)
    sets = [set(row[row >= 0].tolist()) for row in vt]
    for _ in range(rings - 1):
        grown = []
        for s in sets:
            verts = set(triangles[list(s)].ravel().tolist()) if s else set()
            g = set()
            for v in verts:
                g.update(sets[v])
            grown.append(g)
        # only grow from the original one-ring sets
        sets = [s | g for s, g in zip(sets, grown)]
    k = max(len(s) for s in sets)
    out = np.full((num_vertices, k), -1, np.int64)
    for i, s in enumerate(sets):
        out[i, :len(s)] = sorted(s)
    return out


def closest_points(points: np.ndarray, vertices: np.ndarray, triangles: np.ndarray, rings: np.ndarray,
                   vertex_mask=None, triangle_mask=None):
    """Closest point on the mesh for each point: (triangle (N,), barycentrics (N, 3), distance (N,)).

    Candidates are the triangles near the nearest vertex (``rings`` from triangle_rings),
    which holds the true closest triangle for any reasonably shaped mesh. ``vertex_mask`` /
    ``triangle_mask`` restrict the search (e.g. one lip only)."""
    points = np.asarray(points, np.float64)
    near, _ = nearest(points, vertices, vertex_mask)
    cand = rings[near]  # (N, K)
    valid = cand >= 0
    if triangle_mask is not None:
        valid &= triangle_mask[np.maximum(cand, 0)]
    n, k = cand.shape
    best_t = np.full(n, -1, np.int64)
    best_b = np.zeros((n, 3))
    best_d = np.full(n, np.inf)
    for j in range(k):
        ok = valid[:, j]
        if not ok.any():
            continue
        rows = np.flatnonzero(ok)
        t = cand[rows, j]
        tri = triangles[t]
        bary = closest_on_triangles(points[rows], vertices[tri[:, 0]], vertices[tri[:, 1]], vertices[tri[:, 2]])
        q = np.einsum("nk,nkc->nc", bary, vertices[tri])
        d = np.linalg.norm(points[rows] - q, axis=1)
        better = d < best_d[rows]
        r = rows[better]
        best_t[r], best_b[r], best_d[r] = t[better], bary[better], d[better]
    return best_t, best_b, best_d
