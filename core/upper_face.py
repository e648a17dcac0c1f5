"""The upper-face layer: blinks, eyebrows and eye-region motion that speech does not determine.

MeshTalk (Richard et al. 2021) observes that audio determines the lips but not the upper
face: blinks and most eyebrow motion are only loosely related to what is said, so a model
trained to regress them from audio averages them away (our S2L/S2D move the brows < 0.4 mm).
The upper face is thus its own regional mechanism ("Composite and regional facial movements"),
added to S2D's output and never touching the lips.
MeshTalk therefore separates the audio-correlated lips from the uncorrelated upper face and
samples the latter. We do the same, in two parts:

* **A dense basis** of upper-face shapes built on the FLAME head itself (numpy, in the
  template's canonical frame: metres, Y up, face +Z), from the head's own eyeballs and lid
  vertices, so any FLAME-topology identity gets lids that close on *its* eyes:
  ``blink_L``/``blink_R`` (the subject's left/right eye: the upper lid travels over the eyeball
  on an arc about the eyeball's centre, the lower lid rises a little, the lids meet),
  ``brow_raise``, ``brow_inner_raise`` (sad), ``brow_lower`` (frown: down and together),
  ``eye_wide`` (upper lids up), ``squint`` (lower lids up) and ``cheek_raise``.
  A linear blend of a rotation cuts the arc's chord through the cornea, so each blink has an
  in-between corrective key (``blink_*_arc``, weight 4w(1-w)); and a blink overrides
  ``eye_wide``/``squint`` on the lids (their weights are gated by 1 - blink) so every blink
  closes the lids fully whatever else the face does. ``key_weights`` turns control weights
  into the weights of these linear shape keys, so a Blender bake is exact.

* **A controller** (``upper_face_motion``) giving per-frame weights from the audio, seeded:
  - blinks are *procedural*: audio does not determine when a person blinks. Intervals are drawn
    from a gamma distribution (mean 17 a minute: people blink ~15-20 times a minute at rest and
    more, up to ~26, in conversation), each blink is moved within +-0.8 s to where a pause or
    phrase boundary is (blinks cluster there) and away from bilabial closures (given as the lip
    gap the networks predict), and has a fast close and a slower opening (100-400 ms in total);
    a blink is never cut by the clip's ends;
  - eyebrow raises are *procedural from prosody*: hama's phoneme features carry no pitch, and
    our synthetic teacher has no brows to learn from, so raises follow pitch accents found by
    ``core.prosody`` (F0 above its declination line, on loud syllables), each accent raising
    the brows with a seeded probability that grows with its strength; loud syllables spoken
    with *falling* pitch (emphatic low stress) give a small frown, a cue reported for emphasis
    but weaker than raises, so it is kept small;
  - the eye region follows the lips: wide mouth openings raise the cheeks and lower lids a
    little (zygomatic pull), a deterministic function of the predicted lip gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import flame, prosody

NAMES = ("blink_L", "blink_R", "brow_raise", "brow_inner_raise", "brow_lower", "eye_wide", "squint", "cheek_raise")
KEY_NAMES = NAMES + ("blink_L_arc", "blink_R_arc")
INDEX = {n: i for i, n in enumerate(NAMES)}

# Eyeballs in FLAME's vertex order: the subject's left eye (+X) then the right eye.
EYEBALLS = {"L": (3931, 4477), "R": (4477, 5023)}
FACE_VERTICES = 3931

# Shape amplitudes at weight 1 (metres / radians).
BROW_RAISE_M = 0.008
BROW_INNER_M = 0.006
BROW_LOWER_M = 0.004
BROW_TOGETHER_M = 0.003
EYE_WIDE_RAD = np.radians(8.0)
SQUINT_FRACTION = 0.25          # of the lid opening
CHEEK_RAISE_M = 0.003
BLINK_LOWER_SHARE = 0.2         # the lower lid's share of the closing travel
LID_CLEARANCE_M = 0.0004        # lids stay this far outside the eyeball's surface


# ------------------------------------------------------------------------------ eye rig

@dataclass(frozen=True)
class EyeRig:
    """Vertex sets of one eye, found once on the template (indices hold on every identity)."""
    eyeball: np.ndarray    # eyeball vertices
    region: np.ndarray     # face vertices around the eye that the lid shapes may move
    pocket: np.ndarray     # bool over region: the socket surface behind the lids (hidden)
    upper: np.ndarray      # upper lid margin, ordered by X (corners included)
    lower: np.ndarray      # lower lid margin, ordered by X (corners included)


def _sphere_fit(p: np.ndarray) -> tuple[np.ndarray, float]:
    a = np.c_[2 * p, np.ones(len(p))]
    sol = np.linalg.lstsq(a, (p ** 2).sum(1), rcond=None)[0]
    c = sol[:3]
    return c, float(np.sqrt(sol[3] + c @ c))


@lru_cache(maxsize=1)
def eye_rigs() -> dict:
    topo = flame.load_topology()
    v = topo.template.astype(np.float64)
    faces = topo.faces[(topo.faces < FACE_VERTICES).all(axis=1)]
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    rigs = {}
    for side, (a, b) in EYEBALLS.items():
        eyeball = np.arange(a, b)
        c, radius = _sphere_fit(v[eyeball])
        d = v[:FACE_VERTICES] - c
        r = np.linalg.norm(d, axis=1)
        region = np.flatnonzero((r < radius + 0.009) & (d[:, 2] > -0.004))
        in_region = np.zeros(FACE_VERTICES, bool)
        in_region[region] = True
        pocket_all = in_region & (r < radius - 0.0015)
        # The lid margin: the skin vertices bordering the socket pocket.
        touches = np.zeros(FACE_VERTICES, bool)
        for x, y in ((0, 1), (1, 0)):
            hit = pocket_all[edges[:, x]]
            touches[edges[hit, y]] = True
        margin = np.flatnonzero(touches & in_region & ~pocket_all)
        u = d[margin, 0]
        phi = np.arctan2(d[margin, 1], d[margin, 2])
        i0, i1 = margin[np.argmin(u)], margin[np.argmax(u)]
        u0, u1 = d[i0, 0], d[i1, 0]
        p0, p1 = np.arctan2(d[i0, 1], d[i0, 2]), np.arctan2(d[i1, 1], d[i1, 2])
        line = p0 + (u - u0) / (u1 - u0) * (p1 - p0)
        inside = (margin != i0) & (margin != i1)
        up = margin[inside & (phi > line)]
        lo = margin[inside & (phi <= line)]
        up = np.r_[i0, up[np.argsort(d[up, 0])], i1]
        lo = np.r_[i0, lo[np.argsort(d[lo, 0])], i1]
        rigs[side] = EyeRig(eyeball, region, pocket_all[region], up, lo)
    return rigs


def lid_gap(vertices: np.ndarray, side: str) -> np.ndarray:
    """Distance (in the vertices' units) between the upper and the lower lid margin at the eye's
    vertical midline, measured on the mesh: each margin is the polyline of its vertices, and
    the point of each at the midline X (halfway between the corners) is interpolated along it.
    ``vertices``: (..., 5023, 3) in the canonical frame (X across the face)."""
    rig = eye_rigs()[side]
    v = np.asarray(vertices, np.float64)
    corners = v[..., [rig.upper[0], rig.upper[-1]], :]
    mid_x = corners[..., 0].mean(axis=-1)
    pts = []
    for chain in (rig.upper, rig.lower):
        p = v[..., chain, :]                               # (..., n, 3)
        x = p[..., 0]
        # segment whose X range contains mid_x (the margins are monotone in X near the middle)
        mx = mid_x[..., None]
        seg = ((x[..., :-1] - mx) * (x[..., 1:] - mx) <= 0)
        k = np.argmax(seg, axis=-1)
        a = np.take_along_axis(p, k[..., None, None].repeat(3, -1), axis=-2)[..., 0, :]
        b = np.take_along_axis(p, (k + 1)[..., None, None].repeat(3, -1), axis=-2)[..., 0, :]
        t = np.clip((mid_x - a[..., 0]) / np.where(np.abs(b[..., 0] - a[..., 0]) < 1e-12, 1e-12,
                                                    b[..., 0] - a[..., 0]), 0.0, 1.0)
        pts.append(a + t[..., None] * (b - a))
    return np.linalg.norm(pts[0] - pts[1], axis=-1)


# ------------------------------------------------------------------------------ basis

def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _lid_falloff(s):
    """1 on the tarsal plate next to the margin, easing to 0 at the top/bottom of the band."""
    return 1.0 - _smoothstep((np.asarray(s) - 0.25) / 0.75)


def _vertex_normals(v, faces):
    tri = v[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    out = np.zeros_like(v)
    for k in range(3):
        np.add.at(out, faces[:, k], n)
    return out / (np.linalg.norm(out, axis=1, keepdims=True) + 1e-20)


class _Eye:
    """An eye of one head: its centre, its eyeball's surface, its lid margins.

    Lid coordinates about the eyeball centre c: X across (u), the elevation angle phi in the
    Y-Z plane (0 = straight ahead) and the distance rho from the X axis through c. A lid moves
    by changing phi (a rotation over the eyeball, the path a real lid takes), with small
    changes of u and rho so the lids meet outside the cornea. The two margins are matched by
    their arc length from corner to corner, so the rounded corners close smoothly too."""

    def __init__(self, v, rig: EyeRig):
        self.rig = rig
        self.v = v
        self.c, self.radius = _sphere_fit(v[rig.eyeball])
        e = v[rig.eyeball] - self.c
        self.eye_r = np.linalg.norm(e, axis=1)
        self.eye_dir = e / self.eye_r[:, None]
        self.up = self.coords(rig.upper)
        self.lo = self.coords(rig.lower)
        self.t_up = self._arc(v[rig.upper])
        self.t_lo = self._arc(v[rig.lower])

    @staticmethod
    def _arc(p):
        s = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))]
        return s / s[-1]

    def coords(self, idx):
        d = self.v[idx] - self.c
        return np.stack([d[:, 0], np.arctan2(d[:, 1], d[:, 2]), np.hypot(d[:, 1], d[:, 2])], axis=1)

    def point(self, q):
        u, phi, rho = q[..., 0], q[..., 1], q[..., 2]
        return self.c + np.stack([u, rho * np.sin(phi), rho * np.cos(phi)], axis=-1)

    def surface_r(self, dirs, cone=np.radians(15.0)):
        """Largest eyeball radius within ``cone`` of each unit direction (conservative)."""
        cos = dirs @ self.eye_dir.T
        r = np.where(cos > np.cos(cone), self.eye_r[None, :], 0.0).max(axis=1)
        return np.where(r > 0, r, self.radius)

    def _at(self, chain, t_chain, t):
        return np.stack([np.interp(t, t_chain, chain[:, k]) for k in range(3)], axis=-1)

    def meeting(self, t):
        """Where the lids meet, (u, phi, rho) at arc-length fraction t: a fifth of the way up
        from the lower margin (the upper lid does most of the travel), outside the cornea."""
        upper, lower = self._at(self.up, self.t_up, t), self._at(self.lo, self.t_lo, t)
        m = lower + BLINK_LOWER_SHARE * (upper - lower)
        m[:, 2] = np.maximum(upper[:, 2], lower[:, 2])
        p = self.point(m) - self.c
        dist = np.linalg.norm(p, axis=1)
        need = self.surface_r(p / dist[:, None]) + LID_CLEARANCE_M
        m[:, 2] *= np.maximum(1.0, need / dist)
        return m

    def lid_shape(self, up_target, lo_target, clear=True):
        """Displacements (5023, 3) moving the margin vertices to ``up_target``/``lo_target``
        ((n, 3) lid coordinates); the lid skin follows the nearest margin point with a falloff
        over the distance from the margin (full on the tarsal plate, none at the brow)."""
        rig = self.rig
        idx = rig.region
        p = self.v[idx]
        best = []
        for chain_idx, delta, reach in ((rig.upper, up_target - self.up, 0.008),
                                        (rig.lower, lo_target - self.lo, 0.006)):
            a, b = self.v[chain_idx[:-1]], self.v[chain_idx[1:]]
            ab = b - a
            s = np.clip(np.einsum("psc,sc->ps", p[:, None, :] - a[None], ab) / (ab * ab).sum(1), 0.0, 1.0)
            q = a[None] + s[..., None] * ab[None]
            dist = np.linalg.norm(p[:, None, :] - q, axis=2)
            k = dist.argmin(axis=1)
            sk = s[np.arange(len(p)), k][:, None]
            d = (1 - sk) * delta[k] + sk * delta[k + 1]
            best.append((dist[np.arange(len(p)), k], d, reach))
        (du, dd_up, ru), (dl, dd_lo, rl) = best
        use_up = du <= dl
        dist = np.where(use_up, du, dl)
        reach = np.where(use_up, ru, rl)
        delta = np.where(use_up[:, None], dd_up, dd_lo)
        w = 1.0 - _smoothstep((dist - 0.001) / (reach - 0.001))
        w = np.where(rig.pocket, 1.0, w)
        q = self.coords(idx) + w[:, None] * delta
        new = self.point(q)
        if clear:
            # skin that moved over the eyeball stays outside it (the pocket stays hidden inside)
            moved = (~rig.pocket) & (np.abs(w * delta[:, 1]) > 1e-6)
            dv = new - self.c
            r = np.linalg.norm(dv, axis=1)
            need = self.surface_r(dv / r[:, None]) + LID_CLEARANCE_M
            push = moved & (r < need)
            new[push] = self.c + dv[push] * (need[push] / r[push])[:, None]
        out = np.zeros_like(self.v)
        out[idx] = new - p
        return out

    def blink(self, fraction=1.0):
        """The lids a ``fraction`` of the way to closed (1 = closed: they meet)."""
        f = float(fraction)
        up = self.up + f * (self.meeting(self.t_up) - self.up)
        lo = self.lo + f * (self.meeting(self.t_lo) - self.lo)
        return self.lid_shape(up, lo)

    def eye_wide(self):
        up = self.up.copy()
        up[:, 1] += EYE_WIDE_RAD * np.sin(np.pi * self.t_up)  # most in the middle, none at the corners
        return self.lid_shape(up, self.lo, clear=False)

    def squint(self):
        lo = self.lo + SQUINT_FRACTION * (self._at(self.up, self.t_up, self.t_lo) - self.lo)
        lo[:, 2] = self.lo[:, 2]
        return self.lid_shape(self.up, lo)


def _brow_fields(v, normals):
    """Brow and cheek displacement fields (each (5023, 3)) on a head in the canonical frame."""
    topo = flame.load_topology()
    lmk = topo.landmarks(v)
    face = np.zeros(len(v), bool)
    face[:FACE_VERTICES] = True
    front = np.clip((normals[:, 2] + 0.1) / 0.4, 0.0, 1.0) * face
    x, y = v[:, 0], v[:, 1]
    ax = np.abs(x - 0.5 * (lmk[21, 0] + lmk[22, 0]))   # distance from the face's midline
    # brow line per side as a function of |x|: landmarks 17-21 (right) and 22-26 (left)
    right, left = lmk[17:22], lmk[22:27]
    mid_x = 0.5 * (lmk[21, 0] + lmk[22, 0])
    bx = np.r_[np.abs(right[:, 0] - mid_x), np.abs(left[:, 0] - mid_x)]
    by = np.r_[right[:, 1], left[:, 1]]
    order = np.argsort(bx)
    brow_y = np.interp(ax, bx[order], by[order])
    inner, outer = bx.min(), bx.max()
    dy = y - brow_y
    # vertical profile: full on the brow, fading over the upper lid below and the forehead above
    below = 1.0 - _smoothstep((-dy - 0.004) / 0.011)
    above = np.where(dy < 0.006, 1.0, 1.0 - 0.65 * _smoothstep((dy - 0.006) / 0.02)
                     - 0.35 * _smoothstep((dy - 0.026) / 0.03))
    vert = np.where(dy < 0, below, above)
    lateral = 1.0 - _smoothstep((ax - outer) / 0.012)
    lateral_from_mid = _smoothstep(ax / max(inner, 1e-3))  # the glabella moves less
    base = front * vert * lateral
    # "up" along the skin: the world Y axis projected on the tangent plane
    up = np.array([0.0, 1.0, 0.0])[None, :] - normals[:, 1:2] * normals
    up /= np.linalg.norm(up, axis=1, keepdims=True) + 1e-20
    side = np.sign(x - mid_x)
    inward = np.stack([-side, np.zeros_like(x), np.zeros_like(x)], axis=1)
    s = np.clip((ax - inner) / (outer - inner), 0.0, 1.0)   # 0 at the inner brow, 1 at the outer
    raise_ = (BROW_RAISE_M * base * (0.6 + 0.4 * lateral_from_mid))[:, None] * up
    inner_w = (1.0 - _smoothstep(s)) * base * lateral_from_mid
    inner_raise = (BROW_INNER_M * inner_w)[:, None] * up + (0.001 * inner_w)[:, None] * inward
    lower_w = base * (1.0 - 0.6 * _smoothstep(s))
    together = BROW_TOGETHER_M * lower_w * np.clip(ax / max(inner, 1e-3), 0.0, 1.0)
    lower = -(BROW_LOWER_M * lower_w)[:, None] * up + together[:, None] * inward
    # cheeks: below each eye's outer half, pushed up (and a little forward) by a smile
    cheek = np.zeros_like(v)
    for eye_idx in (range(36, 42), range(42, 48)):
        e = lmk[list(eye_idx)]
        centre = np.array([e[:, 0].mean() + 0.3 * (e[:, 0].mean() - mid_x), e[:, 1].mean() - 0.022])
        r2 = ((x - centre[0]) ** 2 + (y - centre[1]) ** 2) / (0.015 ** 2)
        # ... and never below the nose's base, so the lips keep exactly the networks' motion
        w = np.exp(-0.5 * r2) * (r2 < 9.0) * front * (y < brow_y - 0.012) * (y > lmk[33, 1])
        cheek += (CHEEK_RAISE_M * w)[:, None] * (up + np.array([0.0, 0.0, 0.3]))
    return raise_, inner_raise, lower, cheek


@lru_cache(maxsize=4)
def _keys_for(key: bytes) -> np.ndarray:
    v = np.frombuffer(key, np.float64).reshape(-1, 3).copy()
    topo = flame.load_topology()
    normals = _vertex_normals(v, topo.faces)
    eyes = {s: _Eye(v, r) for s, r in eye_rigs().items()}
    raise_, inner, lower, cheek = _brow_fields(v, normals)
    blink = {s: e.blink(1.0) for s, e in eyes.items()}
    arc = {s: e.blink(0.5) - 0.5 * blink[s] for s, e in eyes.items()}
    wide = eyes["L"].eye_wide() + eyes["R"].eye_wide()
    squint = eyes["L"].squint() + eyes["R"].squint()
    keys = [blink["L"], blink["R"], raise_, inner, lower, wide, squint, cheek, arc["L"], arc["R"]]
    out = np.stack(keys).astype(np.float32)
    out[:, FACE_VERTICES:] = 0.0  # eyeballs never move
    return out


def shape_keys(head_canonical: np.ndarray | None = None) -> tuple[tuple, np.ndarray]:
    """(KEY_NAMES, (len(KEY_NAMES), 5023, 3) float32): the linear shape keys of the layer, built
    on ``head_canonical`` (a FLAME head in the canonical frame; default the template)."""
    v = flame.load_topology().template if head_canonical is None else head_canonical
    return KEY_NAMES, _keys_for(np.ascontiguousarray(v, np.float64).tobytes())


def basis(head_canonical: np.ndarray | None = None) -> tuple[tuple, np.ndarray]:
    """(NAMES, (K, 5023, 3) float32): each control's shape at weight 1, in metres in the
    canonical frame. The emotion teacher reuses these fields for brows and lids."""
    return NAMES, shape_keys(head_canonical)[1][:len(NAMES)]


def key_weights(weights: np.ndarray) -> np.ndarray:
    """Control weights (T, K) -> weights (T, len(KEY_NAMES)) of the linear shape keys: blinks gate
    eye_wide and squint off the lids, and drive their arc correctives with 4w(1-w)."""
    w = np.clip(np.asarray(weights, np.float64), 0.0, 1.0)
    out = np.zeros((len(w), len(KEY_NAMES)))
    out[:, :len(NAMES)] = w
    blink = np.maximum(w[:, INDEX["blink_L"]], w[:, INDEX["blink_R"]])
    out[:, INDEX["eye_wide"]] *= 1.0 - blink
    out[:, INDEX["squint"]] *= 1.0 - blink
    out[:, len(NAMES)] = 4.0 * w[:, 0] * (1.0 - w[:, 0])
    out[:, len(NAMES) + 1] = 4.0 * w[:, 1] * (1.0 - w[:, 1])
    return out


def dense(weights: np.ndarray, head_canonical: np.ndarray | None = None) -> np.ndarray:
    """Control weights (T, K) -> (T, 5023, 3) float32 canonical displacements."""
    _, keys = shape_keys(head_canonical)
    kw = key_weights(weights).astype(np.float32)
    return np.einsum("tk,kvc->tvc", kw, keys, optimize=True)


# ------------------------------------------------------------------------------ controller

BLINK_RATE_PER_MIN = 17.0     # the renewal process' mean rate (measured on real speech: docs/eval/upper_face.md)
BLINK_MIN_INTERVAL_S = 1.2
BLINK_SEARCH_S = 0.8          # a blink moves this far to reach a pause or dodge a closure
BLINK_DURATION_S = (0.32, 0.06, 0.22, 0.42)   # mean, sd, min, max of the whole lid motion
BLINK_CLOSE_SHARE = 0.3       # closing takes 30 % of the blink, opening the rest (slower)
BLINK_HOLD_S = 0.03
EXPRESSIVE = ("brow_raise", "brow_inner_raise", "brow_lower", "eye_wide", "squint", "cheek_raise")


def blink_profile(dt: np.ndarray, duration: float) -> np.ndarray:
    """Lid closure (0 open - 1 closed) at times ``dt`` (s) from the moment the lids meet:
    an eased fast close, a short hold, then a slower opening that decelerates."""
    tc = BLINK_CLOSE_SHARE * duration
    to = duration - tc - BLINK_HOLD_S
    dt = np.asarray(dt, np.float64)
    close = _smoothstep(1.0 + dt / tc)
    x = np.clip((dt - BLINK_HOLD_S) / to, 0.0, 1.0)
    opening = (1.0 - x) ** 2
    return np.where(dt <= 0, np.where(dt > -tc, close, 0.0), np.where(dt <= BLINK_HOLD_S, 1.0, opening))


def bilabial_peaks(lip_gap: np.ndarray, fps: float) -> np.ndarray:
    """Frames at the peak of a lip closure inside speech: a local minimum of the inner-lip gap
    (any offset, e.g. the predicted landmarks' 62-66 distance) that is well below the gap of the
    open frames within 150 ms on *both* sides (so the closed mouth of a pause does not count)."""
    g = np.asarray(lip_gap, np.float64)
    n = len(g)
    mask = np.zeros(n, bool)
    if n < 3:
        return mask
    lo, hi = np.percentile(g, 10), np.percentile(g, 90)
    span = hi - lo
    if span < 1e-4:  # under 0.1 mm of motion: no articulation to protect
        return mask
    k = max(1, int(round(0.15 * fps)))
    for f in range(n):
        left, right = g[max(0, f - k):f], g[f + 1:f + 1 + k]
        if len(left) == 0 or len(right) == 0:
            continue
        if g[f] > min(left.min(), right.min()) + 1e-9:
            continue  # not the local minimum
        if left.max() - g[f] > 0.35 * span and right.max() - g[f] > 0.35 * span:
            mask[max(0, f - 1):f + 2] = True   # the peak and its neighbours
    return mask


def _speech_frames(pros: prosody.Prosody, fps: float, n: int) -> np.ndarray:
    return prosody.to_frames(pros.speech.astype(float), fps, n) > 0.5


def _boundaries(speech: np.ndarray, fps: float) -> np.ndarray:
    """Frames within 0.3 s of a phrase boundary: a change between speech and a pause >= 150 ms."""
    out = np.zeros(len(speech), bool)
    k = int(round(0.3 * fps))
    for a, b in prosody.runs(~speech):
        if (b - a) / fps >= 0.15:
            for edge in (a, b):
                out[max(0, edge - k):edge + k + 1] = True
    return out


def schedule_blinks(num_frames: int, fps: float, speech: np.ndarray, rng: np.random.Generator,
                    avoid: np.ndarray | None = None, rate_per_min: float = BLINK_RATE_PER_MIN) -> list:
    """[(frame where the lids meet, duration s)]: a gamma renewal process (mean ``rate_per_min``)
    whose every blink is moved, within +-0.8 s, toward pauses and phrase boundaries and off any
    frame of ``avoid`` (bilabial closures) while the lids are more than half closed."""
    mean = 60.0 / rate_per_min
    shape = 4.0
    pause = ~speech
    boundary = _boundaries(speech, fps)
    avoid = np.zeros(num_frames, bool) if avoid is None else np.asarray(avoid, bool)
    blinks = []
    t = rng.uniform(0.25, mean)           # a stationary process: the first blink anywhere in one mean
    last = -10 ** 9   # frame of the previous blink
    while t < num_frames / fps:
        mu, sd, lo, hi = BLINK_DURATION_S
        dur = float(np.clip(rng.normal(mu, sd), lo, hi))
        # the whole blink fits in the clip (a blink cut by the clip's end would never reopen)
        before, after = int(np.ceil(BLINK_CLOSE_SHARE * dur * fps)), int(np.ceil((1 - BLINK_CLOSE_SHARE) * dur * fps))
        a = max(int(np.floor((t - BLINK_SEARCH_S) * fps)), int(np.ceil(last + BLINK_MIN_INTERVAL_S * fps)), before)
        b = min(int(np.ceil((t + BLINK_SEARCH_S) * fps)), num_frames - 1 - after)
        noise = rng.random(max(b - a + 1, 0))
        best, best_score = None, -np.inf
        offsets = np.arange(-int(np.ceil(dur * fps)), int(np.ceil(dur * fps)) + 1)
        half_closed = offsets[blink_profile(offsets / fps, dur) >= 0.5]
        for i, p in enumerate(range(a, b + 1)):
            frames = p + half_closed
            frames = frames[(frames >= 0) & (frames < num_frames)]
            if avoid[frames].any():
                continue
            score = 1.5 * pause[p] + 1.0 * boundary[p] + 0.8 * noise[i]
            if score > best_score:
                best, best_score = p, score
        if best is None:          # every frame near t is a closure: try a little later
            t += 0.4
            continue
        blinks.append((best, dur))
        last = best
        t = best / fps + max(BLINK_MIN_INTERVAL_S, rng.gamma(shape, mean / shape))
    return blinks


def _events_envelope(n: int, fps: float, events: list) -> np.ndarray:
    """max over events (peak time s, amplitude, hold s) of a smooth rise-hold-decay bump."""
    out = np.zeros(n)
    for tp, amp, hold in events:   # each bump touches only its own frames
        a = max(0, int(np.floor((tp - 0.15) * fps)))
        b = min(n, int(np.ceil((tp + 0.5 + hold) * fps)) + 1)
        t = np.arange(a, b) / fps
        rise = _smoothstep((t - (tp - 0.15)) / 0.2)
        fall = 1.0 - _smoothstep((t - (tp + 0.05 + hold)) / 0.45)
        out[a:b] = np.maximum(out[a:b], amp * rise * fall)
    return out


def _peaks(x: np.ndarray, half_window: int, threshold: float) -> list:
    out = []
    for i in range(len(x)):
        if x[i] < threshold:
            continue
        seg = x[max(0, i - half_window):i + half_window + 1]
        if x[i] >= seg.max() and (not out or i - out[-1] > half_window):
            out.append(i)
    return out


def upper_face_motion(samples16k: np.ndarray, fps: float, num_frames: int, seed: int = 0,
                      lip_gap: np.ndarray | None = None, intensity: float = 1.0,
                      avoid: np.ndarray | None = None) -> tuple[np.ndarray, tuple]:
    """Per-frame control weights (num_frames, K) float32 and NAMES for a clip.

    ``lip_gap``: optional (num_frames,) inner-lip gap (metres, any offset): blinks avoid its
    closure peaks and the cheeks follow its openings. ``avoid``: optional extra frames where the
    lids must not be more than half closed. ``intensity`` scales brows, lids and cheeks; blinks
    always close fully (a half blink looks wrong) and are left out only at intensity 0.
    Deterministic given ``seed``."""
    n = int(num_frames)
    weights = np.zeros((n, len(NAMES)), np.float32)
    if n == 0 or intensity <= 0:
        return weights, NAMES
    rng = np.random.default_rng(seed)
    pros = prosody.analyse(samples16k)
    speech = _speech_frames(pros, fps, n)
    block = np.zeros(n, bool)
    if lip_gap is not None:
        lip_gap = np.asarray(lip_gap, np.float64)
        if lip_gap.shape != (n,):
            raise ValueError(f"lip_gap must have one value per frame ({n}), got shape {lip_gap.shape}.")
        block |= bilabial_peaks(lip_gap, fps)
    if avoid is not None:
        block |= np.asarray(avoid, bool)[:n]
    # blinks: both lids together
    blink = np.zeros(n)
    frames_t = np.arange(n)
    for peak, dur in schedule_blinks(n, fps, speech, rng, block):
        blink = np.maximum(blink, blink_profile((frames_t - peak) / fps, dur))
    weights[:, INDEX["blink_L"]] = blink
    weights[:, INDEX["blink_R"]] = blink
    # brows: raises on pitch accents, small frowns on loud low-pitched stress
    rate = prosody.RATE
    hw = int(0.25 * rate)
    raises = []
    for i in _peaks(pros.accent, hw, 0.3):
        a = float(pros.accent[i])
        if rng.random() < min(0.9, 0.25 + 0.5 * a):   # not every accent: brows that always bounce look mechanical
            raises.append((i / rate, min(0.65, 0.25 + 0.35 * a) * rng.uniform(0.85, 1.15), rng.uniform(0.15, 0.35)))
    frowns = []
    for i in _peaks(pros.low_stress, hw, 0.25):
        near_raise = any(abs(i / rate - tp) < 0.6 for tp, _, _ in raises)
        if not near_raise and rng.random() < 0.5:
            frowns.append((i / rate, 0.15 + 0.25 * float(pros.low_stress[i]), rng.uniform(0.1, 0.25)))
    brow = _events_envelope(n, fps, raises)
    weights[:, INDEX["brow_raise"]] = brow
    weights[:, INDEX["eye_wide"]] = 0.25 * brow
    weights[:, INDEX["brow_lower"]] = _events_envelope(n, fps, frowns)
    # eye region following the lips: wide openings lift the cheeks and lower lids a little
    if lip_gap is not None:
        lo, hi = np.percentile(lip_gap, 10), np.percentile(lip_gap, 95)
        opening = np.clip((lip_gap - lo) / max(hi - lo, 1e-4), 0.0, 1.0)
    else:
        opening = prosody.to_frames(np.clip((pros.loudness_db - np.percentile(pros.loudness_db, 90) + 12) / 12,
                                            0, 1), fps, n) * speech
    opening = prosody.smooth(opening, 0.06 * fps)
    weights[:, INDEX["cheek_raise"]] = 0.3 * opening
    weights[:, INDEX["squint"]] = 0.12 * opening
    expressive = [INDEX[k] for k in EXPRESSIVE]
    weights[:, expressive] = np.clip(weights[:, expressive] * float(intensity), 0.0, 1.0)
    return weights, NAMES


# ------------------------------------------------------------------------------ a clip's track

@dataclass
class UpperFaceTrack:
    """The upper-face layer of one clip as linear shape keys, ready to bake on their own."""
    names: tuple               # KEY_NAMES
    weights: np.ndarray        # (T, len(names)) float32: each key's weight per frame
    keys: np.ndarray           # (len(names), 5023, 3) float32: displacements in the head's own frame
    controls: np.ndarray       # (T, K) float32: the control weights (NAMES) they came from

    def displacements(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """(n, 5023, 3) float32 displacements of frames [start, stop)."""
        return np.einsum("tk,kvc->tvc", self.weights[start:stop], self.keys, optimize=True)


def make_track(controls: np.ndarray, keys_user: np.ndarray) -> UpperFaceTrack:
    return UpperFaceTrack(KEY_NAMES, key_weights(controls).astype(np.float32),
                          np.asarray(keys_user, np.float32), np.asarray(controls, np.float32))


def inner_lip_gap(landmark_displacements: np.ndarray) -> np.ndarray:
    """(T,) inner-lip opening (m) from S2L's (T, 68, 3) landmark displacements: landmark 62's
    rise over 66's (the rest gap is a constant and does not matter to ``bilabial_peaks``)."""
    d = np.asarray(landmark_displacements, np.float64)
    return d[:, 62, 1] - d[:, 66, 1]


# ------------------------------------------------------------------------------ evidence

def pitch_accent_envelope(samples16k: np.ndarray, fps: float, num_frames: int) -> np.ndarray:
    """A plain pitch-accent envelope for evaluation, simpler than the controller's: F0 above the
    clip's median voiced F0 (semitones, >= 0) on voiced frames, smoothed over ~150 ms."""
    f0, voiced = prosody.yin_f0(samples16k)
    st = np.zeros(len(f0))
    if voiced.any():
        st[voiced] = np.maximum(12.0 * np.log2(f0[voiced] / np.median(f0[voiced])), 0.0)
    return prosody.to_frames(prosody.smooth(st, 15.0), fps, num_frames)


def measure(vertices: np.ndarray, neutral: np.ndarray, fps: float, samples16k: np.ndarray | None = None) -> dict:
    """Upper-face figures of a mesh sequence (T, 5023, 3) and its neutral head, both in the
    canonical frame (metres): blinks (lid gap on the mesh), brow motion and, with the audio,
    the brows' correlation with the pitch-accent envelope."""
    v = np.asarray(vertices, np.float64)
    n = len(v)
    rest = {s: float(lid_gap(neutral, s)) for s in EYEBALLS}
    gaps = {s: lid_gap(v, s) for s in EYEBALLS}
    closure = np.mean([1.0 - gaps[s] / rest[s] for s in EYEBALLS], axis=0)
    blinks = []
    for a, b in prosody.runs(closure > 0.5):
        lo, hi = a, b
        while lo > 0 and closure[lo - 1] > 0.1:
            lo -= 1
        while hi < n and closure[hi] > 0.1:
            hi += 1
        blinks.append({"frame": int(a + np.argmax(closure[a:b])),
                       "min_gap_mm": float(max(gaps[s][a:b].min() for s in EYEBALLS) * 1000.0),
                       "duration_ms": float((hi - lo) / fps * 1000.0)})
    lmk = flame.landmarks(v) - flame.landmarks(np.asarray(neutral, np.float64))[None]
    brow = np.linalg.norm(lmk[:, 17:27], axis=2).mean(axis=1) * 1000.0
    minutes = n / fps / 60.0
    out = {"frames": n, "seconds": round(n / fps, 3), "rest_lid_gap_mm": {s: rest[s] * 1000.0 for s in rest},
           "blinks": len(blinks), "blinks_per_minute": len(blinks) / minutes if minutes > 0 else float("nan"),
           "blink_events": blinks, "brow_p95_mm": float(np.percentile(brow, 95)),
           "brow_max_mm": float(brow.max()), "_brow_mm": brow}
    if samples16k is not None:
        env = pitch_accent_envelope(samples16k, fps, n)
        out["_accent"] = env
        ok = brow.std() > 1e-9 and env.std() > 1e-9
        out["brow_accent_correlation"] = float(np.corrcoef(brow, env)[0, 1]) if ok else float("nan")
    return out
