"""Registration: fit the FLAME template to a user's head of any topology, scale, pose and position.

Two steps, both numpy only:

1. A similarity ``canonical = s R x + t`` taking the user's head into the template frame
   (metres, Y up, face looking +Z). Either from named points the user placed
   (``USER_LANDMARKS``: nose tip, eye corners, mouth corners, chin...), or found
   automatically from the geometry: the 24 axis assignments between the principal axes of the
   user's surface and the template's, each refined by a few iterations of scaled ICP on a
   subsample; the best-scoring one is refined on more points. A head has no symmetry that
   maps its front onto its back, so the nose and chin settle the choice. (A face-landmark
   network on a render of the head, e.g. mediapipe's, would need a library stock Blender does
   not ship and a renderer in the loop; the geometry alone finds the pose of the project's test
   heads in every case, and named points cover the heads it cannot.)
2. A regularised non-rigid fit: embedded deformation (Sumner et al. 2007) of the template on a
   coarse node graph (farthest-point nodes, each an affine map), solved by dense linear least
   squares. The coordinates decouple (point-to-point targets projected towards the tangent
   plane), so each iteration is one small dense solve with three right-hand sides. The
   smoothness weight falls over the iterations, coarse to fine. Where the head's mouth is open
   (a boundary loop near the template's mouth opening), the template's rim is pulled onto it:
   the surface alone leaves the lips free to slide along it.

The fitted template (5023 vertices, the user's frame and units) is what the networks animate;
``core.transfer`` carries that motion to the user's own vertices.

"Not a head" is decided on the measured fit: after the best automatic similarity the template's
face must lie within ``MAX_RIGID_FACE_MM`` of the user's surface on average (not checked when the
user placed landmarks: a stylised head may be far from FLAME before the fit), and after the
non-rigid fit within ``MAX_FIT_FACE_MM`` (template-scale millimetres, point to tangent plane;
FLAME identities fit to about 0.4 mm, a head 20 % wider than FLAME to about 0.6 mm).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from itertools import permutations, product

import numpy as np

from . import alignment, flame, lip_aperture, surface
from .errors import NotAHeadError, TopologyError

MIN_VERTICES = 300
MAX_RIGID_FACE_MM = 6.0
MAX_FIT_FACE_MM = 2.5

# Named points a user may place when automatic placement fails -> iBUG-68 landmark on FLAME.
# "right"/"left" are the character's own sides.
USER_LANDMARKS = {
    "nose_tip": 30, "nose_bridge": 27, "subnasale": 33, "chin": 8,
    "eye_outer_right": 36, "eye_inner_right": 39, "eye_inner_left": 42, "eye_outer_left": 45,
    "mouth_corner_right": 48, "mouth_corner_left": 54, "upper_lip": 51, "lower_lip": 57,
}


@dataclass(frozen=True)
class FitConfig:
    nodes: int = 260              # embedded-deformation nodes on the template
    node_neighbours: int = 6      # graph edges per node
    vertex_nodes: int = 4         # nodes influencing each template vertex
    face_density: float = 1.0     # > 1: nodes that much closer together on the face than elsewhere
    samples: int = 20000          # points sampled on the user's surface
    # Smoothness weights, coarse to fine; iterations per weight.
    smooth_schedule: tuple = (10.0, 3.0, 1.0, 0.3, 0.1, 0.03)
    iterations_per_stage: int = 3
    affine_prior: float = 0.002   # pulls node maps towards rotations-ish (identity linear part)
    tangent_weight: float = 0.1   # how much of the tangential offset the data term pulls
    mouth_normal_mm: float = 6.0  # > 0: around the mouth, nearest in (position, this x normal)
    mouth_tangent_weight: float = 0.5
    reject_mm: float = 8.0        # correspondences farther than this (template scale) are ignored
    rim_weight: float = 1.0       # > 0: the template's mouth opening is pulled onto the head's own (if open)
    rim_reject_mm: float = 6.0    # rim points farther than this from the template's rim are ignored
    seed: int = 0


@dataclass
class Registration:
    similarity: alignment.Similarity   # user frame -> canonical template frame
    fitted: np.ndarray                 # (5023, 3) fitted template, user frame and units
    fitted_canonical: np.ndarray       # (5023, 3) fitted template, canonical frame (metres)
    rigid_face_mm: float               # mean face distance after the similarity alone
    fit_face_mm: float                 # mean face distance after the non-rigid fit
    landmarks_from: str                # "automatic" | "user"
    seconds: float

    def summary(self) -> str:
        return (f"FLAME template fitted ({self.landmarks_from} landmarks): face within "
                f"{self.fit_face_mm:.2f} mm of the surface on average (rigid {self.rigid_face_mm:.2f} mm), "
                f"scale {1.0 / self.similarity.scale:.4g} user units per metre, {self.seconds:.1f} s.")


# --- input checks -------------------------------------------------------------------------------

def check_mesh(vertices, faces, what: str = "mesh") -> tuple[np.ndarray, np.ndarray]:
    """(vertices float64 (N, 3), triangles (M, 3)); TopologyError naming what is wrong."""
    v = np.asarray(vertices, np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise TopologyError(f"{what}: expected vertex coordinates of shape (N, 3), got {v.shape}.")
    if len(v) < MIN_VERTICES:
        raise TopologyError(
            f"{what} has {len(v)} vertices; a head needs at least {MIN_VERTICES} to carry lip motion "
            "(subdivide it first).")
    if not np.isfinite(v).all():
        raise TopologyError(f"{what} has vertices with NaN or infinite coordinates.")
    tris, _ = surface.polygons_to_triangles(faces)
    if len(tris) == 0:
        raise TopologyError(f"{what} has no faces: a point cloud cannot be animated.")
    if tris.min() < 0 or tris.max() >= len(v):
        raise TopologyError(f"{what} has faces that use vertex indices outside 0..{len(v) - 1}.")
    if np.ptp(v, axis=0).max() <= 0:
        raise TopologyError(f"{what} is degenerate: all vertices are at the same point.")
    return v, tris


# --- the template side (cached) -----------------------------------------------------------------

@lru_cache(maxsize=1)
def _template():
    topo = flame.load_topology()
    v = topo.template.astype(np.float64)
    faces = topo.faces.astype(np.int64)
    samples, _ = surface.sample_surface(v, faces, 8000, seed=1)
    normals = surface.vertex_normals(v, faces)
    lmk = topo.landmarks(v)
    # The face: in front of the ears, between the brows and the chin. Used for the fit measures.
    face = ((v[:, 2] > lmk[[0, 16], 2].max()) & (v[:, 1] < lmk[list(flame.BROWS), 1].max() + 0.01)
            & (v[:, 1] > lmk[8, 1] - 0.005))
    return v, faces, samples, normals, np.flatnonzero(face)


@lru_cache(maxsize=4)
def _deformation_graph(num_nodes: int, node_neighbours: int, vertex_nodes: int, face_density: float = 1.0):
    v, _, _, _, face_idx = _template()
    # Distances off the face count less, so the face (where speech moves) gets more nodes.
    stretch = np.full(len(v), 1.0 / face_density)
    stretch[face_idx] = 1.0
    # Farthest-point nodes, started at the nose tip so the face gets its share first.
    topo = flame.load_topology()
    start = int(np.argmin(np.linalg.norm(v - topo.landmarks(v)[30], axis=1)))
    nodes = [start]
    d = np.linalg.norm(v - v[start], axis=1) * stretch
    for _ in range(num_nodes - 1):
        i = int(np.argmax(d))
        nodes.append(i)
        d = np.minimum(d, np.linalg.norm(v - v[i], axis=1) * stretch)
    g = v[nodes]
    dv = np.linalg.norm(v[:, None, :] - g[None], axis=2)           # (V, n)
    order = np.argsort(dv, axis=1)[:, :vertex_nodes + 1]
    dk = np.take_along_axis(dv, order, axis=1)
    w = np.clip(1.0 - dk[:, :vertex_nodes] / dk[:, vertex_nodes:], 0, None) ** 2
    w /= np.maximum(w.sum(1, keepdims=True), 1e-12)
    idx = order[:, :vertex_nodes]
    dg = np.linalg.norm(g[:, None] - g[None], axis=2)
    nbr = np.argsort(dg, axis=1)[:, 1:node_neighbours + 1]
    edges = {(min(a, b), max(a, b)) for a in range(len(g)) for b in nbr[a]}
    edges = np.array(sorted(edges), np.int64)
    edges = np.concatenate([edges, edges[:, ::-1]])                 # both directions
    return g, idx, w, edges


# --- step 1: similarity -------------------------------------------------------------------------

def _proper_axis_maps():
    out = []
    for perm in permutations(range(3)):
        for signs in product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            m[np.arange(3), perm] = signs
            out.append(m)
    return out


def _pca(points):
    mu = points.mean(0)
    _, vecs = np.linalg.eigh(np.cov((points - mu).T))
    return mu, vecs[:, ::-1]


def _similarity_icp(user_pts, tmpl_pts, sim: alignment.Similarity, iterations: int, trim: float = 0.9):
    """Scaled ICP, both directions, trimmed; returns (similarity, mean symmetric distance)."""
    score = np.inf
    for _ in range(iterations):
        pc = sim.to_canonical(user_pts)
        i_t, d_ut = surface.nearest(pc, tmpl_pts)       # user -> template
        i_u, d_tu = surface.nearest(tmpl_pts, pc)       # template -> user
        score = 0.5 * (d_ut.mean() + d_tu.mean())
        keep_u = d_ut <= np.quantile(d_ut, trim)
        keep_t = d_tu <= np.quantile(d_tu, trim)
        src = np.concatenate([user_pts[keep_u], user_pts[i_u[keep_t]]])
        dst = np.concatenate([tmpl_pts[i_t[keep_u]], tmpl_pts[keep_t]])
        sim = alignment.fit_similarity(src, dst)
    pc = sim.to_canonical(user_pts)
    d_ut = surface.nearest(pc, tmpl_pts)[1]
    d_tu = surface.nearest(tmpl_pts, pc)[1]
    return sim, 0.5 * (d_ut.mean() + d_tu.mean())


def automatic_similarity(user_samples: np.ndarray, seed: int = 0) -> alignment.Similarity:
    """User frame -> template frame from the geometry alone (see the module docstring)."""
    _, _, tmpl_samples, _, _ = _template()
    rng = np.random.default_rng(seed)
    small_u = user_samples[rng.choice(len(user_samples), min(700, len(user_samples)), replace=False)]
    small_t = tmpl_samples[rng.choice(len(tmpl_samples), 1000, replace=False)]
    mu_u, axes_u = _pca(user_samples)
    mu_t, axes_t = _pca(tmpl_samples)
    scale = np.sqrt(((tmpl_samples - mu_t) ** 2).sum(1).mean() / ((user_samples - mu_u) ** 2).sum(1).mean())
    trials = []
    for m in _proper_axis_maps():
        rot = axes_t @ m @ axes_u.T
        if np.linalg.det(rot) < 0:
            continue
        sim = alignment.Similarity(scale, rot, mu_t - scale * rot @ mu_u)
        trials.append(_similarity_icp(small_u, small_t, sim, iterations=3))
    # Successive halving: the promising poses get more iterations, then more points.
    trials.sort(key=lambda t: t[1])
    trials = sorted((_similarity_icp(small_u, small_t, sim, iterations=6) for sim, _ in trials[:6]),
                    key=lambda t: t[1])
    mid_u = user_samples[rng.choice(len(user_samples), min(2500, len(user_samples)), replace=False)]
    mid_t = tmpl_samples[rng.choice(len(tmpl_samples), 2500, replace=False)]
    refined = [_similarity_icp(mid_u, mid_t, sim, iterations=6) for sim, _ in trials[:2]]
    return min(refined, key=lambda t: t[1])[0]


def similarity_from_landmarks(points: dict) -> alignment.Similarity:
    """User frame -> template frame from named points (``USER_LANDMARKS``; at least 4)."""
    unknown = sorted(set(points) - set(USER_LANDMARKS))
    if unknown:
        raise TopologyError(f"Unknown landmark names {unknown}; use some of {sorted(USER_LANDMARKS)}.")
    if len(points) < 4:
        raise TopologyError(f"Place at least 4 landmarks (got {len(points)}): e.g. nose_tip, chin, "
                            "eye_outer_left, eye_outer_right.")
    names = sorted(points)
    user = np.array([points[n] for n in names], np.float64)
    if user.shape != (len(names), 3) or not np.isfinite(user).all():
        raise TopologyError("Landmarks must be finite 3D points.")
    topo = flame.load_topology()
    tmpl = topo.landmarks(topo.template.astype(np.float64))[[USER_LANDMARKS[n] for n in names]]
    centred = user - user.mean(0)
    if np.linalg.matrix_rank(centred, tol=1e-9 * max(1e-12, np.abs(centred).max())) < 2:
        raise TopologyError("The landmarks are all on one line: place them on both eyes, the nose and the mouth.")
    return alignment.fit_similarity(user, tmpl)


# --- step 2: non-rigid fit --------------------------------------------------------------------------

def _fit_nonrigid(points_c, normals_c, cfg: FitConfig, progress=None, rim_c=None):
    v0, faces, _, _, face_idx = _template()
    g, idx, w, edges = _deformation_graph(cfg.nodes, cfg.node_neighbours, cfg.vertex_nodes, cfg.face_density)
    n_nodes, n_v = len(g), len(v0)
    # Design matrix of one coordinate: per node [A row (3), t (1)].
    B = np.zeros((n_v, 4 * n_nodes))
    rows = np.repeat(np.arange(n_v), idx.shape[1])
    cols = idx.ravel() * 4
    rel = (v0[:, None, :] - g[idx]).reshape(-1, 3) * w.reshape(-1, 1)
    for c in range(3):
        B[rows, cols + c] = rel[:, c]
    B[rows, cols + 3] = w.ravel()
    base = (w[:, :, None] * g[idx]).sum(1)                         # (V, 3)
    Bc = (idx[:, :, None] * 4 + np.arange(4)[None, None]).reshape(n_v, -1)   # nonzero columns
    Bv = np.take_along_axis(B, Bc, axis=1)                                   # and their values
    # Smoothness: node j's map applied to node k's centre should land where node k goes.
    a, b = edges[:, 0], edges[:, 1]
    E = np.zeros((len(edges), 4 * n_nodes))
    er = np.arange(len(edges))
    dgk = g[b] - g[a]
    for c in range(3):
        E[er, 4 * a + c] = dgk[:, c]
    E[er, 4 * a + 3] += 1.0
    E[er, 4 * b + 3] -= 1.0
    EtE = E.T @ E
    Et_rhs = E.T @ dgk                                               # (4n, 3)
    # Affine prior: the linear part near identity.
    P = np.zeros(4 * n_nodes)
    P[np.arange(n_nodes)[:, None] * 4 + np.arange(3)[None]] = 1.0
    prior_rhs = np.zeros((4 * n_nodes, 3))
    for c in range(3):
        prior_rhs[np.arange(n_nodes) * 4 + c, c] = 1.0
    x = prior_rhs.copy()                                              # identity maps, no translation
    topo = flame.load_topology()
    lmk0 = topo.landmarks(v0)
    mouth = np.flatnonzero(np.linalg.norm(v0 - 0.5 * (lmk0[62] + lmk0[66]), axis=1) < 0.035)
    vn = v0
    rim = lip_aperture.lip_surfaces().mouth_loop
    data_scale = n_v / len(edges)
    total = len(cfg.smooth_schedule) * cfg.iterations_per_stage
    step = 0
    reject = cfg.reject_mm / 1000.0
    for lam in cfg.smooth_schedule:
        for _ in range(cfg.iterations_per_stage):
            vn = B @ x + base
            nrm = surface.vertex_normals(vn, faces)
            j, d = surface.nearest(vn, points_c)
            tw = np.full((n_v, 1), cfg.tangent_weight)
            if cfg.mouth_normal_mm > 0:
                # Around the mouth, match position and orientation together: the lips' curvature
                # then pins where along the surface each template vertex belongs.
                near = np.flatnonzero(np.linalg.norm(points_c - vn[mouth].mean(0), axis=1) < 0.05)
                if len(near):
                    sig = cfg.mouth_normal_mm / 1000.0
                    jm = surface._brute(np.hstack([vn[mouth], sig * nrm[mouth]]),
                                        np.hstack([points_c[near], sig * normals_c[near]]))
                    j[mouth] = near[jm]
                    d[mouth] = np.linalg.norm(vn[mouth] - points_c[j[mouth]], axis=1)
                    tw[mouth] = cfg.mouth_tangent_weight
            q, nq = points_c[j], normals_c[j]
            ok = (d < max(reject, 3.0 * np.median(d))) & ((nrm * nq).sum(1) > 0.3)
            off = q - vn
            along = (off * nq).sum(1, keepdims=True) * nq
            target = vn + along + tw * (off - along)
            alpha = ok.astype(np.float64)
            if rim_c is not None:
                # The mouth opening is the one sharp feature of the lips the surface alone does
                # not pin: its rim vertices go to the head's rim (tangent offsets included).
                jr, dr = surface.nearest(vn[rim], rim_c)
                on_rim = dr < cfg.rim_reject_mm / 1000.0
                target[rim[on_rim]] = rim_c[jr[on_rim]]
                alpha[rim[on_rim]] = cfg.rim_weight
            # B has 4 nodes x 4 entries per row: accumulate B^T W B from those blocks (sparse).
            vals = Bv * alpha[:, None]
            BtWB = np.zeros((4 * n_nodes, 4 * n_nodes))
            np.add.at(BtWB, (Bc[:, :, None], Bc[:, None, :]), vals[:, :, None] * Bv[:, None, :])
            BtWt = np.zeros((4 * n_nodes, 3))
            np.add.at(BtWt, Bc, vals[:, :, None] * (target - base)[:, None, :])
            M = BtWB + (lam * data_scale) * EtE + cfg.affine_prior * np.diag(P)
            rhs = BtWt + (lam * data_scale) * Et_rhs + cfg.affine_prior * prior_rhs
            x = np.linalg.solve(M, rhs)
            step += 1
            if progress is not None:
                progress(step / total)
    vn = B @ x + base
    return vn, _face_distance_mm(vn, points_c, normals_c)


def mouth_rim(vertices, triangles, sim: alignment.Similarity, reject_mm: float = 6.0, step_mm: float = 0.5):
    """Points along the head's open mouth (canonical frame, about every ``step_mm``): the boundary
    loop of the mesh nearest the template's mouth opening, or None when the mouth is closed
    (a remesher fused the lips) or no loop lies within ``reject_mm`` of it on average."""
    loops = lip_aperture.boundary_loops(triangles)
    if not loops:
        return None
    tmpl = _template()[0][lip_aperture.lip_surfaces().mouth_loop]
    best, score = None, np.inf
    for lp in loops:
        c = sim.to_canonical(vertices[lp])
        s = np.linalg.norm(c[:, None] - tmpl[None], axis=2).min(1).mean()
        if s < score:
            best, score = c, s
    if score > reject_mm / 1000.0:
        return None
    a, b = best, np.roll(best, -1, axis=0)
    steps = max(1, int(np.ceil(np.linalg.norm(b - a, axis=1).max() * 1000.0 / step_mm)))
    return np.concatenate([a + t * (b - a) for t in np.arange(steps) / steps])


def _face_distance_mm(vertices_c, points_c, normals_c) -> float:
    """Mean distance of the template's face to the user's surface: point to the tangent plane of
    the nearest surface sample, so it does not depend on how densely the surface is sampled."""
    face_idx = _template()[4]
    j, _ = surface.nearest(vertices_c[face_idx], points_c)
    return float(np.abs(((vertices_c[face_idx] - points_c[j]) * normals_c[j]).sum(1)).mean() * 1000.0)


# --- the whole registration -----------------------------------------------------------------------

def register(vertices, faces, landmarks: dict | None = None, config: FitConfig = FitConfig(),
             progress=None, what: str = "mesh") -> Registration:
    """Fit the FLAME template to a head mesh of any topology (quads and n-gons welcome).

    ``faces``: (F, k) array, list of index lists, or Blender's (loops, loop_start, loop_total).
    ``landmarks``: optional {name: (x, y, z)} in the mesh's frame (``USER_LANDMARKS`` names);
    without them the similarity is found automatically. Raises TopologyError for unusable
    meshes and NotAHeadError when the template cannot be fitted (the mesh is not a head).
    """
    t0 = time.perf_counter()
    report = progress or (lambda f: None)
    v, tris = check_mesh(vertices, faces, what)
    samples, normals = surface.sample_surface(v, tris, config.samples, seed=config.seed)
    report(0.02)
    if landmarks:
        sim = similarity_from_landmarks(landmarks)
        source = "user"
    else:
        sim = automatic_similarity(samples, seed=config.seed)
        source = "automatic"
    # Refine on the face-heavy template vertices (both directions, trimmed).
    tv, _, _, _, face_idx = _template()
    sim, _ = _similarity_icp(samples[:: max(1, len(samples) // 6000)], tv, sim, iterations=6)
    report(0.2)
    pc = sim.to_canonical(samples)
    nc = normals @ sim.rotation.T
    rigid_mm = _face_distance_mm(tv, pc, nc)
    # Placed landmarks say it is a head: a stylised one may be far from FLAME before the fit.
    if source == "automatic" and rigid_mm > MAX_RIGID_FACE_MM:
        raise NotAHeadError(
            f"{what} does not look like a head: after the best alignment the template's face is "
            f"{rigid_mm:.1f} mm (at FLAME scale) from its surface on average; a head is within "
            f"{MAX_RIGID_FACE_MM:g} mm. If it is a head, place landmarks by hand "
            f"(nose tip, eye and mouth corners, chin).")
    rim_c = mouth_rim(v, tris, sim, config.rim_reject_mm) if config.rim_weight > 0 else None
    fitted_c, fit_mm = _fit_nonrigid(pc, nc, config, lambda f: report(0.2 + 0.8 * f), rim_c=rim_c)
    if fit_mm > MAX_FIT_FACE_MM:
        raise NotAHeadError(
            f"{what}: the FLAME template could not be fitted to its face ({fit_mm:.1f} mm from the "
            f"surface on average at FLAME scale; a head fits within {MAX_FIT_FACE_MM:g} mm).")
    report(1.0)
    return Registration(similarity=sim, fitted=sim.from_canonical(fitted_c), fitted_canonical=fitted_c,
                        rigid_face_mm=rigid_mm, fit_face_mm=fit_mm, landmarks_from=source,
                        seconds=time.perf_counter() - t0)
