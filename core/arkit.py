"""ARKit-52 blendshape weights from dense FLAME motion, and back.

The basis (core/assets/arkit_basis.npz, made by tools/build_arkit_basis.py, described in
docs/arkit.md) holds the 52 ARKit shapes as displacement fields on the FLAME topology in the
template frame (metres, at weight 1). The weights W (T, 52) in [0, 1] minimise

    1/2 sum_t sum_v a_v |sum_k w_tk B_k(v) - d_t(v)|^2  +  gamma/2 sum_t sum_p (gap_p(w_t) - gap_p(d_t))^2
    + lam/2 sum_t |w_t - w_{t-1}|^2  +  mu/2 |W|^2  +  eta sum W

(a_v: per-vertex weights stored with the basis, the lips heaviest; gap_p: the vertical gap at
the lip contact pairs, so closures are matched as such; lam: temporal smoothness). All frames
are solved at once by projected accelerated gradient (FISTA with restarts) in diagonally
scaled variables: the problem needs only the 52 x 52 Gram matrix and one (T, 52) right-hand
side (one (T, 3V) x (3V, 52) product), then iterations on (T, 52) arrays. Zero motion gives
exactly zero weights.

Also: ARKit names on Blender shape keys (exact, case-insensitive, prefixed, _L/_R variants),
Live Link Face CSV and JSON export. numpy only (runs inside stock Blender).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import flame

# Apple's 52 blendshape locations, in the order of Unreal's EARFaceBlendShape enum, which is
# the column order of Live Link Face recordings (docs/arkit.md cites both).
NAMES = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)
COUNT = len(NAMES)
# Live Link Face CSV: Timecode, BlendShapeCount, the 52 curves (capitalised), then head and eye
# rotations (written as 0: speech does not move the head or the eyes).
ROTATION_COLUMNS = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                    "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
CSV_NAMES = tuple(n[0].upper() + n[1:] for n in NAMES)
BASIS_PATH = flame.ASSETS / "arkit_basis.npz"

# solver defaults (tools/evaluate_arkit.py measures what they give)
SMOOTHNESS = 0.02     # lam relative to the median shape energy
RIDGE = 1e-4          # mu, same scale
SPARSITY = 1e-3       # eta, same scale
ITERATIONS = 150
CLOSURE_WEIGHT = 20.0  # per lip contact pair's vertical gap, against a_v per vertex coordinate


@dataclass(frozen=True)
class Basis:
    names: tuple
    fields: np.ndarray          # (52, 5023, 3) float32, metres, at weight 1
    vertex_weights: np.ndarray  # (5023,) float32: a_v of the data term
    contact_pairs: np.ndarray   # (P, 2) upper / lower lip vertices that touch at rest

    def dense(self, weights: np.ndarray) -> np.ndarray:
        """(T, 52) weights -> (T, 5023, 3) displacements (metres)."""
        w = np.asarray(weights, np.float32)
        if w.shape[-1] != len(self.names):
            raise ValueError(f"expected {len(self.names)} ARKit weights per frame, got {w.shape[-1]}")
        return np.tensordot(w, self.fields, axes=(-1, 0))


@lru_cache(maxsize=2)
def load_basis(path: str | None = None) -> Basis:
    p = Path(path) if path else BASIS_PATH
    if not p.exists():
        raise FileNotFoundError(f"ARKit basis {p} is missing: run tools/build_arkit_basis.py")
    with np.load(p) as data:
        names = tuple(str(n) for n in data["names"])
        if names != NAMES:
            raise ValueError(f"ARKit basis {p} does not hold the 52 ARKit names in Apple's order")
        return Basis(names=names, fields=data["basis"].astype(np.float32),
                     vertex_weights=data["vertex_weights"].astype(np.float32),
                     contact_pairs=data["contact_pairs"].astype(np.int64))


@lru_cache(maxsize=2)
def _normal_equations(path: str | None = None):
    """Gram matrix G (K, K) and the weighted basis, transposed (3V, K).

    Besides the vertex positions, the vertical gap at each lip contact pair is a data term of
    its own (weight CLOSURE_WEIGHT): a closure is a sub-millimetre property that a small
    position error elsewhere on the lips must not trade away."""
    b = load_basis(path)
    # only the vertices some shape moves enter the right-hand side
    used = np.flatnonzero(np.abs(b.fields).max(axis=(0, 2)) > 0)
    fields = b.fields[:, used].astype(np.float64) * 1000.0              # mm
    a = b.vertex_weights[used].astype(np.float64)
    pos = np.searchsorted(used, b.contact_pairs)                         # pairs in the used set
    assert np.array_equal(used[pos], b.contact_pairs), "lip contact pairs must move in the basis"
    J = fields[:, pos[:, 0], 1] - fields[:, pos[:, 1], 1]                # (K, P): gap = y(upper) - y(lower)
    flat = fields.reshape(len(b.names), -1)
    weighted = flat * np.repeat(a, 3)[None] + CLOSURE_WEIGHT * _gap_field(J, pos, len(used))
    G = (flat * np.repeat(a, 3)[None]) @ flat.T + CLOSURE_WEIGHT * J @ J.T
    # the data arrive in metres: fold the 1000 into the weighted basis; laid out over all vertices
    # (zeros where nothing moves) and transposed, because gathering the used vertices out of a
    # (T, V, 3) array costs more than the product itself
    full = np.zeros((len(b.names), flame.NUM_VERTICES, 3), np.float32)
    full[:, used] = (weighted * 1000.0).reshape(len(b.names), len(used), 3)
    return G, np.ascontiguousarray(full.reshape(len(b.names), -1).T)


def _gap_field(J, pos, n):
    """(K, 3n): the linear map d -> sum_p J[k, p] * (d_y(upper_p) - d_y(lower_p)) as a field."""
    out = np.zeros((len(J), n, 3))
    np.add.at(out, (slice(None), pos[:, 0], 1), J)
    np.add.at(out, (slice(None), pos[:, 1], 1), -J)
    return out.reshape(len(J), -1)


def dense(weights: np.ndarray, basis: Basis | None = None) -> np.ndarray:
    """The inverse: (T, 52) weights -> (T, 5023, 3) displacements on the FLAME template."""
    return (basis or load_basis()).dense(weights)


def fields_for_head(neutral_vertices, basis: Basis | None = None) -> np.ndarray:
    """The 52 shapes (52, 5023, 3) in a FLAME-topology head's own frame (any units, pose): the
    template-frame fields mapped through the head's similarity alignment, so a FLAME head can
    carry the ARKit shapes as its own shape keys (and be exported as an ARKit-rigged character)."""
    from . import alignment
    sim = alignment.align_to_template(flame.validate_mesh(neutral_vertices, what="head"))
    return sim.displacements_from_canonical((basis or load_basis()).fields).astype(np.float32)


def solve(displacements: np.ndarray, *, smoothness: float = SMOOTHNESS, sparsity: float = SPARSITY,
          iterations: int = ITERATIONS, tolerance: float = 1e-5) -> np.ndarray:
    """(T, 5023, 3) template-frame displacements (metres) -> (T, 52) float32 weights in [0, 1]."""
    d = np.asarray(displacements)
    if d.ndim != 3 or d.shape[1:] != (flame.NUM_VERTICES, 3):
        raise ValueError(f"expected displacements of shape (frames, {flame.NUM_VERTICES}, 3), got {d.shape}")
    G, weighted_t = _normal_equations()
    T, K = len(d), len(G)
    if T == 0:
        return np.zeros((0, K), np.float32)
    rhs = (np.asarray(d, np.float32).reshape(T, -1) @ weighted_t).astype(np.float64)   # (T, K)
    scale = float(np.median(np.diag(G)[np.diag(G) > 0]))
    lam, mu, eta = smoothness * scale, RIDGE * scale, sparsity * scale
    H = G + mu * np.eye(K)
    # diagonal scaling: w = u / sqrt(p); the box becomes 0 <= u <= sqrt(p)
    p = np.diag(H) + 2 * lam * (T > 1)
    s = 1.0 / np.sqrt(p)
    Hs = H * s[:, None] * s[None, :]
    step = 1.0 / (np.linalg.eigvalsh(Hs)[-1] + (4 * lam * s * s).max() * (T > 1))
    upper = np.sqrt(p)
    rhs_s = (rhs - eta) * s[None, :]

    # float32 from here: the iterations only need ~1e-4 in the weights
    Hs, rhs_s, upper = Hs.astype(np.float32), rhs_s.astype(np.float32), upper.astype(np.float32)
    smooth = (lam * s * s).astype(np.float32) if T > 1 else None   # time Laplacian, column-scaled

    def grad(u):
        g = u @ Hs
        g -= rhs_s
        if smooth is not None:
            diff = np.diff(u, axis=0)
            g[:-1] -= diff * smooth
            g[1:] += diff * smooth
        return g

    # warm start: every frame on its own, unconstrained, then clipped into the box
    w0 = np.clip(np.linalg.solve(H, (rhs - eta).T).T, 0.0, 1.0)
    u = (w0 / s).astype(np.float32)
    y, t_mom = u.copy(), 1.0
    step = np.float32(step)
    for _ in range(iterations):
        u_new = y - step * grad(y)
        np.clip(u_new, 0.0, upper, out=u_new)
        delta = u_new - u
        t_new = 0.5 * (1 + np.sqrt(1 + 4 * t_mom * t_mom))
        if np.vdot(y - u_new, delta) > 0:              # momentum points uphill: restart it
            t_new, y = 1.0, u_new
        else:
            y = u_new + np.float32((t_mom - 1) / t_new) * delta
        u, t_mom = u_new, t_new
        if np.abs(delta).max() * s.max() < tolerance:
            break
    return np.clip(u * s, 0.0, 1.0).astype(np.float32)


def weights_from_audio(animator, audio, fps: float = 30.0, *, sample_rate: int | None = None,
                       expression=None, **solve_options) -> np.ndarray:
    """Speech -> (T, 52) ARKit weights: the networks animate the FLAME template itself (so the
    motion is in the template frame, whatever the character), then ``solve``."""
    anim = animator.animate(audio, flame.load_topology().template, fps, sample_rate=sample_rate,
                            expression=expression)
    return solve(anim.displacements, **solve_options)


# ---- names on other rigs -------------------------------------------------------------------

def _canonical(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_CANONICAL = {_canonical(n): n for n in NAMES}


def arkit_name(key_name: str) -> str | None:
    """The ARKit name a shape key stands for, or None. Accepts the exact name in any case,
    namespaced or prefixed names ("blendShape1.jawOpen", "Face.jawOpen", "ARKit_jawOpen"),
    separators ("Jaw_Open", "mouth-smile-left") and Apple's own side suffixes ("eyeBlink_L",
    "mouthSmile_R"); Blender's duplicate suffix ".001" is ignored."""
    s = re.sub(r"\.\d{3}$", "", key_name.strip())
    s = re.split(r"[.:|/]", s)[-1]                   # namespace or mesh prefix
    s = re.sub(r"^arkit[_\-\s]*", "", s, flags=re.IGNORECASE)
    m = re.match(r"^(.*?)[_\-\s.]([LlRr])$", s)       # Apple's raw values: eyeBlink_L
    if m:
        s = m.group(1) + ("Left" if m.group(2).lower() == "l" else "Right")
    return _CANONICAL.get(_canonical(s))


def match_shape_keys(key_names) -> dict:
    """{ARKit name: shape key name} for the keys that stand for ARKit shapes (an exact name wins
    over a variant when both are present)."""
    found: dict = {}
    for key in key_names:
        name = arkit_name(key)
        if name is None:
            continue
        if name not in found or key == name:
            found[name] = key
    return found


# ---- export ----------------------------------------------------------------------------------

def timecode(frame: int, fps: float) -> str:
    """Non-drop-frame timecode HH:MM:SS:FF.mmm at the nominal (rounded) frame rate."""
    rate = max(1, int(round(fps)))
    seconds, ff = divmod(int(frame), rate)
    hh, rem = divmod(seconds, 3600)
    mm, ss = divmod(rem, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}.000"


def _check_weights(weights) -> np.ndarray:
    w = np.asarray(weights, np.float64)
    if w.ndim != 2 or w.shape[1] != COUNT:
        raise ValueError(f"expected weights of shape (frames, {COUNT}), got {w.shape}")
    return w


def write_live_link_csv(path, weights, fps: float) -> Path:
    """Weight curves as a Live Link Face CSV: Timecode, BlendShapeCount (61 = 52 shapes + 9
    rotations), the 52 shapes in Apple's order, head and eye rotations (0)."""
    w = _check_weights(weights)
    path = Path(path)
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(("Timecode", "BlendShapeCount") + CSV_NAMES + ROTATION_COLUMNS)
        zeros = ["0"] * len(ROTATION_COLUMNS)
        for i, row in enumerate(w):
            out.writerow([timecode(i, fps), COUNT + len(ROTATION_COLUMNS)]
                         + [f"{x:.6f}" for x in row] + zeros)
    return path


def write_json(path, weights, fps: float) -> Path:
    """Weight curves as JSON: {"fps", "names" (Apple's order), "frames": [[52 weights], ...]}."""
    w = _check_weights(weights)
    path = Path(path)
    doc = {"fps": float(fps), "names": list(NAMES),
           "frames": [[round(float(x), 6) for x in row] for row in w]}
    path.write_text(json.dumps(doc, separators=(",", ":")))
    return path


def read_json(path) -> tuple:
    """(weights (T, 52) float32, fps) from a file written by ``write_json``."""
    doc = json.loads(Path(path).read_text())
    names = tuple(doc.get("names", ()))
    if names != NAMES:
        raise ValueError(f"{path}: not an ARKit-52 weight file (names differ from Apple's 52)")
    return np.asarray(doc["frames"], np.float32).reshape(-1, COUNT), float(doc["fps"])
