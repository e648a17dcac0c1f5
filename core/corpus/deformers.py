"""Procedural FLAME deformers: articulation coefficients -> dense displacements, linear by design.

For one identity (a FLAME-topology neutral head in the canonical template frame: metres, Y up,
face looking +Z) ``identity_basis`` builds K displacement fields B_k (K, 5023, 3); a frame with
coefficients c (K,) has dense displacements ``sum_k c_k B_k`` and landmark displacements
``sum_k c_k (M B_k)`` with M the 68-point embedding, so landmark and dense targets always agree
and a corpus only stores per-frame coefficients plus one basis per identity.

Coefficients (COEFFS), all dimensionless, 0 = rest (the neutral head: lips together):
  jaw_sin, jaw_cos    sin(theta), 1 - cos(theta) of the jaw angle theta: together they are the
                      exact rigid rotation about the jaw axis (left-right axis through the joints
                      in front of the ears), blended by smooth skinning weights w_jaw
  close_sin, close_cos  kappa * (jaw_sin, jaw_cos): the lips (weights c_lip) cancel the jaw's
                      motion, so kappa = 1 brings the lower lip back into contact with the upper
  round               lips narrow towards the midline (~30 % of the width) and move forward
  protrude            lips move forward (5 mm)
  spread              mouth corners out (~4 mm each), slightly up and back
  upper_raise         upper lip up (3 mm at the midline, zero at the corners)
  lower_tuck          lower lip up and back under the upper teeth (f, v)
  press               red lips thinned towards the lip line (bilabial press)
  smile               mouth corners up, out and back, cheeks raised (emotion: happy)
  corner_down         mouth corners down and slightly out (emotion: sad, angry)
  brow_raise          both brows up, the forehead following (surprise)
  brow_inner_raise    the inner ends of the brows up and together (sadness)
  brow_lower          brows down and drawn towards the midline (anger)
  eye_wide            upper lids up (surprise)
  squint              lower lids and the cheeks below them up (smile, anger)
The last five are the expression fields of the upper face, taken from the upper-face layer
(core.upper_face): only emotions drive them (speech never does), and they are the only fields
allowed above the eyes.

Weights are computed once on the template (they are per vertex index, so they hold for every
identity) and vanish on the ``upper_face`` region:
  * w_jaw: harmonic interpolation (graph Laplacian) between vertices fixed at 1 (lower edge of the
    mouth opening, chin and mandible body) and vertices fixed at 0 (upper edge of the mouth
    opening, everything above the subnasale, cheeks above the corner-to-jaw-angle line, the head
    behind the jaw angle, the neck 50 mm below the chin). The mesh's mouth opening separates the
    lips, so the weight jumps from upper to lower lip there and is smooth everywhere else.
  * lip zone: 1 on the ``lips`` region, smooth fall-off to 0 within 10 mm.
  * upper / lower lip side: which edge of the mouth opening is geodesically closer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..flame import load_topology
from ..lip_aperture import boundary_loops

COEFFS = ("jaw_sin", "jaw_cos", "close_sin", "close_cos", "round", "protrude", "spread",
          "upper_raise", "lower_tuck", "press", "smile", "corner_down",
          "brow_raise", "brow_inner_raise", "brow_lower", "eye_wide", "squint")
UPPER_FACE_COEFFS = COEFFS[12:]
K = len(COEFFS)


def smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


@dataclass(frozen=True)
class TemplateFields:
    w_jaw: np.ndarray        # (V,) jaw skinning weight
    lip_zone: np.ndarray     # (V,) 1 on lips, fades to 0 within 10 mm
    lip_close: np.ndarray    # (V,) how much a vertex follows the lips (not the jaw) when kappa=1
    red_lip: np.ndarray      # (V,) tight lip weight for press
    cheek_zone: np.ndarray   # (V,) lips and the cheeks beside them, fading out within 25 mm
    upper_side: np.ndarray   # (V,) bool: closer to the upper edge of the mouth opening
    contact_pairs: np.ndarray  # (P, 2) upper / lower lip vertex pairs touching at rest
    mouth_loop: np.ndarray   # vertex indices of the mouth opening (closed loop)
    corners: tuple           # (left, right) corner vertex of the mouth opening
    moving: np.ndarray       # (V,) bool: vertices any field may move


def _edges(faces):
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return np.unique(np.sort(e, axis=1), axis=0)


@lru_cache(maxsize=1)
def template_fields() -> TemplateFields:
    import scipy.sparse as sp
    from scipy.sparse.csgraph import dijkstra
    from scipy.sparse.linalg import spsolve
    from scipy.spatial import cKDTree

    topo = load_topology()
    v = topo.template.astype(np.float64)
    n = len(v)
    L = topo.landmarks(v)
    edges = _edges(topo.faces)
    lengths = np.linalg.norm(v[edges[:, 0]] - v[edges[:, 1]], axis=1)

    # mouth opening: the boundary loop nearest the inner-lip landmarks
    loops = boundary_loops(topo.faces)
    loop = min(loops, key=lambda lp: np.linalg.norm(v[lp].mean(0) - L[60:68].mean(0)))
    i_left, i_right = int(np.argmin(v[loop, 0])), int(np.argmax(v[loop, 0]))
    a, b = sorted((i_left, i_right))
    half1, half2 = loop[a + 1:b], np.concatenate([loop[b + 1:], loop[:a]])
    upper_edge, lower_edge = (half1, half2) if v[half1, 1].mean() > v[half2, 1].mean() else (half2, half1)
    corners = (int(loop[i_left]), int(loop[i_right]))

    graph = sp.coo_matrix((np.r_[lengths, lengths], (np.r_[edges[:, 0], edges[:, 1]], np.r_[edges[:, 1], edges[:, 0]])),
                          shape=(n, n)).tocsr()
    du = dijkstra(graph, indices=upper_edge, min_only=True)
    dl = dijkstra(graph, indices=lower_edge, min_only=True)
    upper_side = du < dl

    # --- jaw weights: harmonic interpolation with Dirichlet constraints --------------------
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    ax = np.abs(x - L[8, 0])
    corner_x = 0.5 * (L[54, 0] - L[48, 0])
    corner_y = 0.5 * (L[48, 1] + L[54, 1])
    angle_x = 0.5 * (L[13, 0] - L[3, 0])
    angle_y = 0.5 * (L[3, 1] + L[13, 1])
    # jaw contour height as a function of |x| (landmarks 3..8, mirrored)
    cx = np.abs(L[3:9, 0] - L[8, 0])[::-1]
    cy = 0.5 * (L[3:9, 1] + L[13:7:-1, 1])[::-1]
    contour_y = np.interp(ax, cx, cy)
    ramp = np.clip((ax - corner_x) / max(angle_x - corner_x, 1e-6), 0, 1)
    core_top = np.where(ax <= corner_x, L[57, 1] - 0.004, (L[57, 1] - 0.004) + ramp * ((angle_y + 0.006) - (L[57, 1] - 0.004)))
    core = (ax < angle_x - 0.004) & (y < core_top) & (y > contour_y - 0.008) & (z > L[3, 2] + 0.008)
    cheek_line = (corner_y + 0.014) + ramp * ((L[2, 1] + L[14, 1]) / 2 - (corner_y + 0.014))
    zero = ((y > L[33, 1]) | ((ax > corner_x) & (y > cheek_line)) | (z < L[3, 2] - 0.012)
            | (y < L[8, 1] - 0.05))
    zero[topo.regions["upper_face"]] = True
    fixed = np.zeros(n, bool)
    value = np.zeros(n)
    fixed[zero] = True
    fixed[core] = True
    value[core] = 1.0
    fixed[upper_edge] = True
    value[upper_edge] = 0.0
    fixed[lower_edge] = True
    value[lower_edge] = 1.0
    fixed[list(corners)] = False
    # vertices in components with no constraint (none expected) stay 0
    adj = sp.coo_matrix((np.ones(2 * len(edges)), (np.r_[edges[:, 0], edges[:, 1]], np.r_[edges[:, 1], edges[:, 0]])),
                        shape=(n, n)).tocsr()
    lap = sp.diags(np.asarray(adj.sum(axis=1)).ravel()) - adj
    free = np.flatnonzero(~fixed)
    fix = np.flatnonzero(fixed)
    rhs = -lap[free][:, fix] @ value[fix]
    w = value.copy()
    w[free] = spsolve(lap[free][:, free].tocsc(), rhs)
    w_jaw = np.clip(w, 0.0, 1.0)

    # --- lip weights -------------------------------------------------------------------
    lips = topo.regions["lips"]
    d_lips, _ = cKDTree(v[lips]).query(v)
    lip_zone = 1.0 - smoothstep(d_lips / 0.010)
    red_lip = 1.0 - smoothstep(d_lips / 0.004)
    cheek_zone = 1.0 - smoothstep(d_lips / 0.025)
    # closure: the lips and the skin just below them ignore the jaw; fades out towards the chin
    d_chin = np.clip((L[57, 1] - y) / 0.014, 0, 1)
    lip_close = np.maximum(lip_zone * (1 - smoothstep(d_chin)), red_lip)
    for arr in (lip_zone, red_lip, lip_close, w_jaw, cheek_zone):
        arr[topo.regions["upper_face"]] = 0.0

    # --- contact pairs: upper / lower lip vertices touching at rest -----------------------
    in_lips = np.zeros(n, bool)
    in_lips[lips] = True
    up = np.flatnonzero(in_lips & upper_side & (ax < 0.85 * corner_x))
    lo = np.flatnonzero(in_lips & ~upper_side & (ax < 0.85 * corner_x))
    dist, j = cKDTree(v[lo]).query(v[up])
    keep = dist < 0.002
    pairs = np.stack([up[keep], lo[j[keep]]], axis=1)

    moving = (w_jaw > 1e-6) | (lip_zone > 1e-6) | (lip_close > 1e-6)
    return TemplateFields(w_jaw=w_jaw, lip_zone=lip_zone, lip_close=lip_close, red_lip=red_lip, cheek_zone=cheek_zone,
                          upper_side=upper_side, contact_pairs=pairs, mouth_loop=loop,
                          corners=corners, moving=moving)


@dataclass
class Identity:
    name: str
    neutral: np.ndarray       # (5023, 3) float32, canonical frame
    basis: np.ndarray         # (K, 5023, 3) float32 displacement fields
    lmk_basis: np.ndarray     # (K, 68, 3) float32 = landmark embedding of basis
    gap_jacobian: np.ndarray  # (K, P) vertical gap change at the lip contact pairs per coefficient
    jaw_radius: float         # metres from the jaw axis to the chin (landmark 8)

    def dense(self, coeffs: np.ndarray) -> np.ndarray:
        """(T, K) coefficients -> (T, 5023, 3) displacements (metres)."""
        return np.tensordot(np.asarray(coeffs, np.float32), self.basis, axes=(-1, 0))

    def landmarks(self, coeffs: np.ndarray) -> np.ndarray:
        return np.tensordot(np.asarray(coeffs, np.float32), self.lmk_basis, axes=(-1, 0))


def jaw_pivot(neutral: np.ndarray) -> np.ndarray:
    """A point on the jaw's hinge axis: between the temporomandibular joints, which sit just in
    front of the ears near the top of the jaw contour (landmarks 0 and 16)."""
    L = load_topology().landmarks(np.asarray(neutral, np.float64))
    top = 0.5 * (L[0] + L[16])
    size = np.linalg.norm(L[0] - L[16]) / 0.1515   # template ear-to-ear contour width
    return np.array([L[8, 0], top[1] - 0.008 * size, top[2] - 0.004 * size])


def identity_basis(name: str, neutral: np.ndarray) -> Identity:
    topo = load_topology()
    f = template_fields()
    v = np.asarray(neutral, np.float64)
    L = topo.landmarks(v)
    L0 = topo.landmarks(topo.template.astype(np.float64))
    scale = np.linalg.norm(L[54] - L[48]) / np.linalg.norm(L0[54] - L0[48])
    center = 0.5 * (L[48] + L[54])
    half_width = 0.5 * np.linalg.norm(L[54] - L[48])
    B = np.zeros((K, len(v), 3))

    # jaw: exact rotation about the x axis through the pivot, split into sin and (1 - cos) parts
    r = v - jaw_pivot(v)
    a_x_r = np.stack([np.zeros(len(v)), -r[:, 2], r[:, 1]], axis=1)          # a x r, a = +x
    a_x_a_x_r = np.stack([np.zeros(len(v)), -r[:, 1], -r[:, 2]], axis=1)     # a x (a x r)
    B[0] = f.w_jaw[:, None] * a_x_r
    B[1] = f.w_jaw[:, None] * a_x_a_x_r   # R(t) r - r = sin t (a x r) + (1 - cos t) a x (a x r)
    B[2] = -f.lip_close[:, None] * B[0]
    B[3] = -f.lip_close[:, None] * B[1]

    xr = (v[:, 0] - center[0]) / half_width          # -1 .. 1 across the mouth
    lz = f.lip_zone[:, None]
    # flat over the middle of the mouth, smoothly to zero at the corners (a peaked profile
    # creases the lip at the midline)
    centre_profile = 1.0 - smoothstep((np.abs(xr) - 0.35) / 0.65)
    # round: narrow towards the midline and push forward (corners more than the middle)
    B[4] = lz * np.stack([-0.30 * (v[:, 0] - center[0]),
                          np.zeros(len(v)),
                          scale * (0.003 + 0.003 * np.clip(xr ** 2, 0, 1))], axis=1)
    # protrude: forward
    B[5] = lz * np.array([0.0, 0.0, 0.005 * scale])
    # spread: corners out, slightly up and back
    xc = np.clip(xr, -1.3, 1.3)
    B[6] = lz * np.stack([0.16 * (v[:, 0] - center[0]),
                          scale * 0.0015 * xc ** 2,
                          -scale * 0.003 * xc ** 2], axis=1)
    # upper lip raise / lower lip tuck: one side only, vanishing at the corners
    up = (f.upper_side * f.lip_zone * centre_profile)[:, None]
    lo = ((~f.upper_side) * f.lip_zone * centre_profile)[:, None]
    B[7] = up * np.array([0.0, 0.003 * scale, 0.0006 * scale])
    B[8] = lo * np.array([0.0, 0.002 * scale, -0.005 * scale])
    # press: red lips thinned towards the lip line
    slit_y = np.interp(v[:, 0], *_slit_line(v, f))
    # (vertices within 2.5 mm of the lip line keep their height, so pressing never crosses the lips)
    above = v[:, 1] - slit_y
    squeeze = np.sign(above) * np.maximum(np.abs(above) - 0.0025, 0.0)
    B[9] = f.red_lip[:, None] * np.stack([np.zeros(len(v)), -0.3 * squeeze,
                                          np.full(len(v), -0.001 * scale)], axis=1)
    # smile / corner_down: the corners carry the motion (zero at the midline), and the cheeks
    # beside and above the corners follow (the zygomatic pull bunches them up)
    corner = np.clip(np.abs(xr), 0, 1.4) ** 2
    cz = f.cheek_zone
    above_corner = np.clip((v[:, 1] - center[1]) / 0.02 + 0.5, 0, 1)
    B[10] = cz[:, None] * np.stack([0.14 * (v[:, 0] - center[0]) * np.minimum(corner, 1.0),
                                    scale * (0.005 * corner + 0.002 * above_corner * (1 - f.lip_zone)),
                                    -scale * 0.0015 * corner], axis=1)
    B[11] = f.lip_zone[:, None] * np.stack([0.04 * (v[:, 0] - center[0]) * np.minimum(corner, 1.0),
                                            -scale * 0.003 * corner, np.zeros(len(v))], axis=1)
    B[:12, topo.regions["upper_face"]] = 0.0
    B[12:] = _upper_face_fields(v)
    B = B.astype(np.float32)
    pu, pl = f.contact_pairs[:, 0], f.contact_pairs[:, 1]
    gap = (B[:, pu, 1] - B[:, pl, 1]).astype(np.float64)
    radius = float(np.linalg.norm(r[np.argmin(np.linalg.norm(v - L[8], axis=1))][1:]))
    return Identity(name=name, neutral=v.astype(np.float32), basis=B,
                    lmk_basis=topo.landmarks(B).astype(np.float32), gap_jacobian=gap, jaw_radius=radius)


def _upper_face_fields(v):
    """The five expression fields of the upper face (see COEFFS) on this identity: the upper-face
    layer's own shapes (core.upper_face), so an emotion's brows and lids and the layer's prosodic
    brows are one motion; squint carries the cheek raise with it."""
    from .. import upper_face
    names, shapes = upper_face.basis(v)
    i = {n: k for k, n in enumerate(names)}
    return np.stack([shapes[i["brow_raise"]], shapes[i["brow_inner_raise"]], shapes[i["brow_lower"]],
                     shapes[i["eye_wide"]], shapes[i["squint"]] + shapes[i["cheek_raise"]]])


def _slit_line(v, f):
    """Lip line height as a function of x: contact pair midpoints, extended to the corners."""
    pu, pl = f.contact_pairs[:, 0], f.contact_pairs[:, 1]
    mid = 0.5 * (v[pu] + v[pl])
    xs = np.r_[v[f.corners[0], 0], mid[:, 0], v[f.corners[1], 0]]
    ys = np.r_[v[f.corners[0], 1], mid[:, 1], v[f.corners[1], 1]]
    o = np.argsort(xs)
    return xs[o], ys[o]


# ---- identities -------------------------------------------------------------------------

def _smooth_warp(v, rng, amplitude, sigma=0.045, count=6):
    """Low-frequency deformation: a few Gaussian bumps of random direction on the face."""
    topo = load_topology()
    L = topo.landmarks(v)
    centres = L[rng.choice(68, count, replace=False)] + rng.normal(0, 0.01, (count, 3))
    d = np.zeros_like(v)
    for c in centres:
        w = np.exp(-np.sum((v - c) ** 2, axis=1) / (2 * sigma ** 2))
        d += w[:, None] * rng.normal(0, amplitude, 3)
    return v + d


def make_identities(seed: int = 0) -> list:
    """The corpus identities: the two bundled heads plus scaled, stretched and smoothly warped
    variants of them (all in the canonical frame). Returns a list of (name, neutral)."""
    from pathlib import Path

    from ..meshio import read_mesh
    heads = Path(__file__).resolve().parent.parent / "assets" / "heads"
    base = {"template": read_mesh(heads / "template_neutral.ply")[0].astype(np.float64),
            "sample": read_mesh(heads / "sample_neutral.ply")[0].astype(np.float64)}
    rng = np.random.default_rng(seed)
    out = [("template", base["template"]), ("sample", base["sample"])]
    variants = [("template", "scale0.92", np.diag([0.92, 0.92, 0.92])),
                ("sample", "scale1.08", np.diag([1.08, 1.08, 1.08])),
                ("template", "wide", np.diag([1.08, 0.98, 1.03])),
                ("sample", "long", np.diag([0.96, 1.07, 1.0])),
                ("template", "narrow", np.diag([0.93, 1.03, 0.98]))]
    for src, tag, m in variants:
        out.append((f"{src}-{tag}", base[src] @ m.T))
    for k in range(5):
        src = ("template", "sample")[k % 2]
        out.append((f"{src}-warp{k}", _smooth_warp(base[src], rng, 0.003)))
    return out
