"""Build the S2D mesh hierarchy once and ship it as core/assets/mesh_hierarchy.npz.

    python tools/build_mesh_hierarchy.py [--out core/assets/mesh_hierarchy.npz]

Steps, per level (CoMA's recipe, written here in numpy + plain Python):
  1. decimate: Garland-Heckbert quadric-error edge collapse down to ceil(N / 4) vertices. A
     collapse u -> v deletes u and keeps v where it is, so each coarse mesh is a subset of the
     finer one and down-sampling is a selection. Collapses that would fold a face over, make the
     mesh non-manifold (link condition), duplicate a face or eat into a hole's rim are refused.
  2. up-sample: each fine vertex -> barycentric coordinates of its closest point on the coarse
     mesh (same connected component: an eyeball vertex never lands on an eyelid).
  3. spirals: centre, 1-ring counter-clockwise from the neighbour nearest to "up", outer rings.
"""

from __future__ import annotations

import argparse
import heapq
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.flame import load_topology  # noqa: E402
from core.mesh_hierarchy import (  # noqa: E402
    DEFAULT_PATH, DILATION, FACTOR, NUM_LEVELS, SPIRAL_LENGTH, load_hierarchy, topology_sha256,
)

# Rim edges get a perpendicular plane this many times stiffer than the surface, so the neck and
# eye openings keep their shape (Garland-Heckbert's boundary constraint planes).
BOUNDARY_WEIGHT = 10.0
# A collapse may turn no surrounding face by more than ~80 degrees (cos 0.17): refuses flips.
MIN_NORMAL_COS = 0.17


# --------------------------------------------------------------------------------------------
# Decimation
# --------------------------------------------------------------------------------------------

def _face_normals(v, f):
    return np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])


def _initial_quadrics(v, f):
    """Per-vertex 4x4 quadrics: area-weighted face planes plus rim constraint planes."""
    q = np.zeros((len(v), 4, 4))
    n2 = _face_normals(v, f)
    area2 = np.linalg.norm(n2, axis=1)
    n = n2 / np.maximum(area2, 1e-30)[:, None]
    planes = np.concatenate([n, -np.einsum("ij,ij->i", n, v[f[:, 0]])[:, None]], axis=1)
    kp = 0.5 * area2[:, None, None] * planes[:, :, None] * planes[:, None, :]
    for k in range(3):
        np.add.at(q, f[:, k], kp)

    # Rim edges: directed edges whose reverse is absent (faces are consistently oriented).
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    face_of = np.tile(np.arange(len(f)), 3)
    keys = directed[:, 0].astype(np.int64) * len(v) + directed[:, 1]
    reverse = directed[:, 1].astype(np.int64) * len(v) + directed[:, 0]
    rim = ~np.isin(keys, reverse)
    a, b = directed[rim, 0], directed[rim, 1]
    e = v[b] - v[a]
    m = np.cross(e, n[face_of[rim]])
    m /= np.maximum(np.linalg.norm(m, axis=1), 1e-30)[:, None]
    planes = np.concatenate([m, -np.einsum("ij,ij->i", m, v[a])[:, None]], axis=1)
    weight = BOUNDARY_WEIGHT * np.einsum("ij,ij->i", e, e)
    kb = weight[:, None, None] * planes[:, :, None] * planes[:, None, :]
    np.add.at(q, a, kb)
    np.add.at(q, b, kb)
    return q


def _cross(a, b):
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _sub(a, b):
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


class _Decimator:
    """Half-edge collapses u -> v on a triangle mesh, cheapest quadric error first."""

    def __init__(self, vertices, faces):
        self.pos = [tuple(p) for p in vertices.tolist()]
        self.faces = [list(f) for f in faces.tolist()]
        self.face_alive = [True] * len(faces)
        self.vert_faces = [set() for _ in vertices]
        self.nbrs = [set() for _ in vertices]
        for fi, (a, b, c) in enumerate(self.faces):
            for x, y, z in ((a, b, c), (b, c, a), (c, a, b)):
                self.vert_faces[x].add(fi)
                self.nbrs[x].update((y, z))
        self.alive = [True] * len(vertices)
        self.num_alive = len(vertices)
        self.version = [0] * len(vertices)
        self.quadric = _initial_quadrics(vertices, faces)
        self.homog = np.concatenate([vertices, np.ones((len(vertices), 1))], axis=1)
        self.heap = []

    def _cost(self, u, v):
        h = self.homog[v]
        return float(h @ (self.quadric[u] + self.quadric[v]) @ h)

    def _push_all(self):
        edges = np.array([(u, v) for u in range(len(self.pos)) if self.alive[u]
                          for v in sorted(self.nbrs[u])])
        h = self.homog[edges[:, 1]]
        q = self.quadric[edges[:, 0]] + self.quadric[edges[:, 1]]
        cost = np.einsum("ei,eij,ej->e", h, q, h)
        self.heap = [(c, u, v, self.version[u], self.version[v])
                     for c, (u, v) in zip(cost.tolist(), edges.tolist())]
        heapq.heapify(self.heap)

    def _is_boundary(self, x):
        # A vertex's fan is closed exactly when it has as many neighbours as faces.
        return len(self.nbrs[x]) != len(self.vert_faces[x])

    def _can_collapse(self, u, v):
        shared = self.vert_faces[u] & self.vert_faces[v]
        common = self.nbrs[u] & self.nbrs[v]
        if len(shared) == 1:             # rim edge: the rim loses u, v stays on it
            if len(common) != 1:
                return False
        elif len(shared) == 2:           # interior edge: link condition; u must not be on a rim
            if len(common) != 2 or self._is_boundary(u):
                return False
        else:
            return False
        # No rim vertex may be left holding a single triangle (a spike sticking into the hole).
        # (A collapse never changes whether v or the opposite corners lie on a rim.)
        for x in {x for f in shared for x in self.faces[f]} - {u}:
            if self._is_boundary(x):
                after = len(self.vert_faces[x] - shared)
                if x == v:
                    after += len(self.vert_faces[u]) - len(shared)
                if after < 2:
                    return False
        v_faces = {frozenset(self.faces[f]) for f in self.vert_faces[v]}
        pv = self.pos[v]
        for f in self.vert_faces[u] - shared:
            tri = self.faces[f]
            new = [v if x == u else x for x in tri]
            if frozenset(new) in v_faces:
                return False
            p = [self.pos[x] for x in tri]
            q = [pv if x == u else self.pos[x] for x in tri]
            n_old = _cross(_sub(p[1], p[0]), _sub(p[2], p[0]))
            n_new = _cross(_sub(q[1], q[0]), _sub(q[2], q[0]))
            dot = n_old[0] * n_new[0] + n_old[1] * n_new[1] + n_old[2] * n_new[2]
            len_new = math.sqrt(n_new[0] ** 2 + n_new[1] ** 2 + n_new[2] ** 2)
            len_old = math.sqrt(n_old[0] ** 2 + n_old[1] ** 2 + n_old[2] ** 2)
            if len_new <= 1e-12 * max(len_old, 1e-30) or dot < MIN_NORMAL_COS * len_new * len_old:
                return False
        return True

    def _collapse(self, u, v):
        for f in list(self.vert_faces[u]):
            tri = self.faces[f]
            if v in tri:
                self.face_alive[f] = False
                for x in tri:
                    self.vert_faces[x].discard(f)
            else:
                tri[tri.index(u)] = v
                self.vert_faces[v].add(f)
        self.vert_faces[u] = set()
        for w in self.nbrs[u]:
            self.nbrs[w].discard(u)
            if w != v:
                self.nbrs[w].add(v)
                self.nbrs[v].add(w)
        self.nbrs[u] = set()
        self.quadric[v] += self.quadric[u]
        self.alive[u] = False
        self.num_alive -= 1
        self.version[v] += 1
        for w in sorted(self.nbrs[v]):
            heapq.heappush(self.heap, (self._cost(v, w), v, w, self.version[v], self.version[w]))
            heapq.heappush(self.heap, (self._cost(w, v), w, v, self.version[w], self.version[v]))

    def run(self, target):
        self._push_all()
        stalled = False
        while self.num_alive > target:
            if not self.heap:
                if stalled:
                    raise RuntimeError(f"decimation stuck at {self.num_alive} vertices (target {target})")
                stalled = True  # refused collapses may have become legal: retry every edge once
                self._push_all()
                continue
            _, u, v, ver_u, ver_v = heapq.heappop(self.heap)
            if not (self.alive[u] and self.alive[v]) or ver_u != self.version[u] or ver_v != self.version[v]:
                continue
            if v not in self.nbrs[u] or not self._can_collapse(u, v):
                continue
            self._collapse(u, v)
            stalled = False
        kept = np.flatnonzero(self.alive)
        faces = np.array([f for f, ok in zip(self.faces, self.face_alive) if ok], dtype=np.int64)
        remap = np.full(len(self.pos), -1, np.int64)
        remap[kept] = np.arange(len(kept))
        return kept.astype(np.int32), remap[faces].astype(np.int32)


def decimate(vertices, faces, target):
    """Keep ``target`` of ``vertices``: returns (kept indices ascending, faces on the kept set)."""
    return _Decimator(np.asarray(vertices, np.float64), np.asarray(faces)).run(target)


# --------------------------------------------------------------------------------------------
# Up-sampling
# --------------------------------------------------------------------------------------------

def _closest_on_triangles(p, a, b, c):
    """For points p (m,3) and triangles (k,3)x3: squared distance and barycentrics, (m,k)."""
    ab, ac, ap = b - a, c - a, p[:, None, :] - a[None]
    d00 = np.einsum("kc,kc->k", ab, ab)
    d01 = np.einsum("kc,kc->k", ab, ac)
    d11 = np.einsum("kc,kc->k", ac, ac)
    d20 = np.einsum("mkc,kc->mk", ap, ab)
    d21 = np.einsum("mkc,kc->mk", ap, ac)
    denom = np.maximum(d00 * d11 - d01 * d01, 1e-30)
    bv = (d11 * d20 - d01 * d21) / denom
    bw = (d00 * d21 - d01 * d20) / denom
    bu = 1.0 - bv - bw
    inside = (bu >= 0) & (bv >= 0) & (bw >= 0)
    bary = np.stack([bu, bv, bw], axis=-1)
    dist = np.full(bu.shape, np.inf)

    def consider(weights, cand_dist):
        nonlocal bary, dist
        better = cand_dist < dist
        dist = np.where(better, cand_dist, dist)
        bary = np.where(better[..., None], weights, bary)

    proj = bary[..., 0:1] * a + bary[..., 1:2] * b + bary[..., 2:3] * c
    consider(bary, np.where(inside, np.sum((p[:, None, :] - proj) ** 2, axis=-1), np.inf))
    # Outside the triangle the closest point lies on one of its edges.
    for i, j, start, end in ((0, 1, a, b), (1, 2, b, c), (2, 0, c, a)):
        e = end - start
        t = np.clip(np.einsum("mkc,kc->mk", p[:, None, :] - start[None], e) / np.maximum(
            np.einsum("kc,kc->k", e, e), 1e-30), 0.0, 1.0)
        q = start[None] + t[..., None] * e[None]
        w = np.zeros(t.shape + (3,))
        w[..., i] = 1.0 - t
        w[..., j] = t
        consider(w, np.sum((p[:, None, :] - q) ** 2, axis=-1))
    return dist, bary


def upsampling(fine_v, coarse_v, coarse_f, kept, labels_fine, labels_coarse, chunk=128):
    """U (N_fine x N_coarse) as (N_fine, 3) columns and barycentric weights."""
    n = len(fine_v)
    index = np.zeros((n, 3), np.int64)
    weight = np.zeros((n, 3), np.float64)
    # Kept vertices: themselves, with weight 1 (the other two columns are a face's corners at 0).
    any_face = {}
    for tri in coarse_f.tolist():
        for k in range(3):
            any_face.setdefault(tri[k], tri[k:] + tri[:k])   # rotated: the vertex itself first
    for j, i in enumerate(kept):
        index[i] = any_face.get(j, [j, j, j])
        weight[i] = [1.0, 0.0, 0.0]
    removed = np.setdiff1d(np.arange(n), kept)
    face_label = labels_coarse[coarse_f[:, 0]]
    for lab in np.unique(labels_fine[removed]):
        pts = removed[labels_fine[removed] == lab]
        tris = np.flatnonzero(face_label == lab)
        a, b, c = (coarse_v[coarse_f[tris, k]] for k in range(3))
        for s in range(0, len(pts), chunk):
            p = pts[s:s + chunk]
            dist, bary = _closest_on_triangles(fine_v[p], a, b, c)
            best = np.argmin(dist, axis=1)
            index[p] = coarse_f[tris[best]]
            weight[p] = bary[np.arange(len(p)), best]
    weight = np.clip(weight, 0.0, None)
    weight /= weight.sum(axis=1, keepdims=True)
    return index.astype(np.int32), weight.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Spirals
# --------------------------------------------------------------------------------------------

def _cyclic_neighbours(n_vertices, faces):
    """Each vertex's neighbours counter-clockwise seen from outside (faces are CCW outward)."""
    nxt = [dict() for _ in range(n_vertices)]
    for a, b, c in faces.tolist():
        nxt[a][b] = c
        nxt[b][c] = a
        nxt[c][a] = b
    rings = []
    for x in range(n_vertices):
        following = nxt[x]
        starts = sorted(set(following) - set(following.values()))  # open fans start at a rim edge
        order, seen = [], set()
        for s in starts + sorted(following):
            w = s
            while w is not None and w not in seen:
                order.append(w)
                seen.add(w)
                w = following.get(w)
        rings.append(order)
    return rings


def _vertex_normals(v, f):
    n = np.zeros_like(v)
    fn = _face_normals(v, f)
    for k in range(3):
        np.add.at(n, f[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1), 1e-30)[:, None]


def _reference_neighbour(centre, ring, v, normal):
    """The neighbour whose tangent-plane direction is nearest to up (+Y), or to front (+Z) where
    the surface faces up or down: gives every vertex the same starting direction."""
    up = np.array([0.0, 1.0, 0.0])
    ref = up - normal @ up * normal
    if np.linalg.norm(ref) < 0.3:
        front = np.array([0.0, 0.0, 1.0])
        ref = front - normal @ front * normal
    d = v[ring] - v[centre]
    d -= (d @ normal)[:, None] * normal
    cos = (d @ ref) / np.maximum(np.linalg.norm(d, axis=1) * np.linalg.norm(ref), 1e-30)
    return int(np.argmax(cos))


def spirals(v, f, length, dilation):
    """(N, length) spirals: centre, then rings outward, every ``dilation``-th entry kept."""
    full = (length - 1) * dilation + 1
    rings = _cyclic_neighbours(len(v), f)
    normals = _vertex_normals(v, f)
    out = np.zeros((len(v), length), np.int32)
    for c in range(len(v)):
        ring = rings[c]
        spiral = [c]
        if ring:
            r0 = _reference_neighbour(c, ring, v, normals[c])
            ring = ring[r0:] + ring[:r0]
        spiral += ring
        visited = set(spiral)
        current = ring
        while len(spiral) < full and current:
            outer = []
            for w in current:
                around = rings[w]
                # Unvisited neighbours of w, counter-clockwise, starting after the visited ones:
                # this continues the spiral in the same sense as the ring before.
                k = len(around)
                start = next((i + 1 for i in range(k)
                              if around[i] in visited and around[(i + 1) % k] not in visited), 0)
                for i in range(k):
                    x = around[(start + i) % k]
                    if x not in visited:
                        visited.add(x)
                        outer.append(x)
            spiral += outer
            current = outer
        spiral = (spiral + [c] * full)[:full]
        out[c] = spiral[::dilation]
    return out


# --------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------

def _components(n, f):
    parent = list(range(n))

    def root(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, c in f.tolist():
        for x, y in ((a, b), (b, c)):
            rx, ry = root(x), root(y)
            if rx != ry:
                parent[max(rx, ry)] = min(rx, ry)
    return np.array([root(x) for x in range(n)])


def build(template, faces, num_levels=NUM_LEVELS, factor=FACTOR,
          spiral_length=SPIRAL_LENGTH, dilation=DILATION):
    """All arrays of the hierarchy file, keyed as in core/mesh_hierarchy.npz."""
    template = np.asarray(template, np.float32)
    faces = np.asarray(faces, np.int32)
    verts, tris = [template.astype(np.float64)], [faces]
    labels = [_components(len(template), faces)]
    out = {}
    for l in range(num_levels - 1):
        target = math.ceil(len(verts[l]) / factor)
        kept, coarse_f = decimate(verts[l], tris[l], target)
        verts.append(verts[l][kept])
        tris.append(coarse_f)
        labels.append(labels[l][kept])
        idx, w = upsampling(verts[l], verts[l + 1], coarse_f, kept, labels[l], labels[l + 1])
        out[f"down_{l}"] = kept.astype(np.int32)
        out[f"up_{l}_rows"] = np.repeat(np.arange(len(verts[l]), dtype=np.int32), 3)
        out[f"up_{l}_cols"] = idx.ravel().astype(np.int32)
        out[f"up_{l}_vals"] = w.ravel().astype(np.float32)
    for l in range(num_levels):
        out[f"vertices_{l}"] = verts[l].astype(np.float32)
        out[f"faces_{l}"] = tris[l].astype(np.int32)
        out[f"spiral_{l}"] = spirals(verts[l], tris[l], spiral_length[l], dilation[l])
    out["level_sizes"] = np.array([len(v) for v in verts], np.int32)
    out["spiral_length"] = np.array(spiral_length, np.int32)
    out["dilation"] = np.array(dilation, np.int32)
    out["source_sha256"] = np.array(topology_sha256(template, faces))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH, help="output .npz (default: %(default)s)")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    topo = load_topology()
    arrays = build(topo.template, topo.faces)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    seconds = time.perf_counter() - t0

    h = load_hierarchy(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB) in {seconds:.1f} s")
    labels = _components(len(topo.template), topo.faces)
    for l in range(h.num_levels):
        comp = np.bincount(np.unique(labels, return_inverse=True)[1][_chain_down(h, l)])
        print(f"level {l}: {h.level_sizes[l]:5d} vertices, {len(h.faces[l]):5d} faces, "
              f"per component {comp.tolist()}, spiral {h.spiral_length[l]} dilation {h.dilation[l]}")
    for l in range(h.num_levels - 1):
        err = np.linalg.norm(h.upsample(l, h.vertices[l + 1]) - h.vertices[l], axis=1) * 1000
        full = h.vertices[l + 1]
        for k in range(l, -1, -1):
            full = h.upsample(k, full)
        err0 = np.linalg.norm(full - h.vertices[0], axis=1) * 1000
        print(f"U_{l}: level {l + 1} -> {l}: mean {err.mean():.2f} mm, max {err.max():.2f} mm | "
              f"level {l + 1} -> 0: mean {err0.mean():.2f} mm, max {err0.max():.2f} mm")
    return 0


def _chain_down(h, l):
    """Indices into level 0 of the level-l vertices."""
    idx = np.arange(h.level_sizes[0])
    for k in range(l):
        idx = idx[h.down[k]]
    return idx


if __name__ == "__main__":
    sys.exit(main())
