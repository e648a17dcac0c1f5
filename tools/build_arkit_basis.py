"""Build the ARKit-52 basis on the FLAME topology -> core/assets/arkit_basis.npz (+ a contact sheet).

Training-side tool (uses scipy through core.corpus.deformers). Every shape is a displacement
field (5023, 3) in the template frame, metres, at weight 1, on the template identity:

* where the articulation teacher has a deformer the shape IS that deformer (jaw rotation at the
  teacher's widest opening, the lip-closure field at that opening, round, protrude, spread,
  upper_raise, lower_tuck, press, smile, corner_down and the five upper-face expression fields),
  left / right shapes split with a smooth 20 mm ramp across the midline so that
  Left + Right == the whole field;
* eyeBlink is the upper-face layer's blink (core.upper_face: the lids travel over the eyeball);
* the rest are simple procedural fields (eyeball rotations,
  jaw sideways / forward, lips sideways, cheek puff, nose sneer, lip shrugs and rolls, dimples);
* tongueOut is zero: FLAME has no tongue.

"Left" is the character's own left, +X in the template frame (ARKit's convention).
docs/arkit.md describes every shape. Usage: python tools/build_arkit_basis.py [--sheet PNG]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import arkit, upper_face  # noqa: E402
from core.corpus import articulation, deformers  # noqa: E402
from core.corpus.deformers import smoothstep  # noqa: E402
from core.flame import load_topology  # noqa: E402
from core.meshio import read_mesh  # noqa: E402

EYEBALL_L = slice(3931, 4477)   # +X: the character's left eye
EYEBALL_R = slice(4477, 5023)
MIDLINE_RAMP = 0.010            # half width of the left/right blend across the midline (m)


def rotation(axis: str, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    raise ValueError(axis)


def rotate_about(v, centre, axis, angles):
    """Displacement of points v rotated by per-point angles about an axis through centre."""
    r = v - centre
    angles = np.broadcast_to(np.asarray(angles, np.float64), (len(v),))
    c, s = np.cos(angles), np.sin(angles)
    out = r.copy()
    if axis == "x":
        out[:, 1] = c * r[:, 1] - s * r[:, 2]
        out[:, 2] = s * r[:, 1] + c * r[:, 2]
    else:  # y
        out[:, 0] = c * r[:, 0] + s * r[:, 2]
        out[:, 2] = -s * r[:, 0] + c * r[:, 2]
    return out - r


def vertex_normals(v, faces):
    n = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, faces[:, k], n)
    return vn / (np.linalg.norm(vn, axis=1, keepdims=True) + 1e-20)


def split(field, x, mid):
    """(left, right) halves of a field: a smooth ramp across the midline, summing to the field."""
    left = smoothstep((x - mid) / (2 * MIDLINE_RAMP) + 0.5)[:, None]
    return field * left, field * (1 - left)




def build(template: np.ndarray):
    topo = load_topology()
    faces = topo.faces
    v = np.asarray(template, np.float64)
    n = len(v)
    L = topo.landmarks(v)
    f = deformers.template_fields()
    ident = deformers.identity_basis("template", v)
    B = ident.basis.astype(np.float64)
    C = {name: B[deformers.COEFFS.index(name)] for name in deformers.COEFFS}
    theta = articulation.MAX_JAW * articulation.JAW_OPEN_AT_CHIN / ident.jaw_radius
    s, c1 = np.sin(theta), 1 - np.cos(theta)
    lip_gain = articulation.MAX_LIP              # weight 1 = the teacher's strongest lip shape
    x = v[:, 0]
    mid = 0.5 * (L[48, 0] + L[54, 0])
    skin = np.ones(n, bool)              # not the eyeballs
    skin[EYEBALL_L] = skin[EYEBALL_R] = False
    out = {name: np.zeros((n, 3)) for name in arkit.NAMES}

    def put(base, field):
        out[base + "Left"], out[base + "Right"] = split(field, x, mid)

    # --- jaw and lip closure: the teacher's rigid jaw rotation at its widest opening ---------
    jaw = s * C["jaw_sin"] + c1 * C["jaw_cos"]
    out["jawOpen"] = jaw
    # a blendshape moves along the chord: how far half a jawOpen is from the half-way rotation
    half = np.sin(theta / 2) * C["jaw_sin"] + (1 - np.cos(theta / 2)) * C["jaw_cos"]
    print(f"jawOpen: {np.degrees(theta):.1f} degree turn at weight 1; at weight 0.5 the linear shape is "
          f"up to {np.linalg.norm(0.5 * jaw - half, axis=1).max() * 1000:.2f} mm off the true arc")
    out["mouthClose"] = s * C["close_sin"] + c1 * C["close_cos"]
    out["mouthFunnel"] = lip_gain * C["round"]
    out["mouthPucker"] = lip_gain * C["protrude"]
    put("mouthSmile", C["smile"])
    put("mouthFrown", C["corner_down"])
    put("mouthStretch", lip_gain * C["spread"])
    put("mouthPress", lip_gain * C["press"])
    put("mouthUpperUp", lip_gain * C["upper_raise"])
    out["mouthRollLower"] = lip_gain * C["lower_tuck"]

    half_width = 0.5 * np.linalg.norm(L[54] - L[48])
    xr = (x - mid) / half_width
    centre_profile = 1.0 - smoothstep((np.abs(xr) - 0.35) / 0.65)
    lower = (~f.upper_side) & skin
    upper = f.upper_side & skin
    # lower lip down: the lower lip (not the chin) turns further down about the jaw axis, half
    # the jaw's full opening at the middle of the lip, nothing at the corners
    put("mouthLowerDown", 0.5 * (lower * f.lip_zone * centre_profile)[:, None] * jaw)
    # upper lip rolled in: the red upper lip goes back and slightly down, as over the teeth
    w_ru = (upper * f.red_lip * centre_profile)[:, None]
    out["mouthRollUpper"] = w_ru * np.array([0.0, -0.0010, -0.0030])
    # shrugs: the lip pushed outward and up (chin raiser for the lower one)
    chin = np.exp(-0.5 * (np.linalg.norm(v - (L[8] + L[57]) / 2, axis=1) / 0.014) ** 2) * skin
    w_sl = np.maximum(lower * f.lip_zone * centre_profile, chin)[:, None]
    out["mouthShrugLower"] = w_sl * np.array([0.0, 0.0025, 0.0020])
    out["mouthShrugUpper"] = (upper * f.lip_zone * centre_profile)[:, None] * np.array([0.0, 0.0015, 0.0020])
    # mouth left / right: both lips together 5 mm sideways, fading within 10 mm of the lips
    out["mouthLeft"] = f.lip_zone[:, None] * np.array([0.005, 0.0, 0.0])
    out["mouthRight"] = f.lip_zone[:, None] * np.array([-0.005, 0.0, 0.0])
    # dimples: each corner drawn back (and a little out) into the cheek
    for side, k in (("Left", 54), ("Right", 48)):
        w = np.exp(-0.5 * (np.linalg.norm(v - L[k], axis=1) / 0.008) ** 2) * skin
        out["mouthDimple" + side] = w[:, None] * np.array([0.0015 * np.sign(L[k, 0] - mid), 0.0, -0.0030])

    # jaw forward / sideways: the jaw skinning weight times a rigid motion
    wj = f.w_jaw[:, None]
    out["jawForward"] = wj * np.array([0.0, 0.0, 0.004])
    pivot = deformers.jaw_pivot(v)
    chin_r = np.linalg.norm((L[8] - pivot)[[0, 2]])
    yaw = 0.005 / max(chin_r, 1e-6)        # chin moves 5 mm sideways
    out["jawLeft"] = wj * rotate_about(v, pivot, "y", yaw)     # +yaw turns +z towards +x (left)
    out["jawRight"] = wj * rotate_about(v, pivot, "y", -yaw)

    # cheeks: puff = outward along the normal between the mouth corner and the jaw contour
    vn = vertex_normals(v, faces)
    w_puff = np.zeros(n)
    for k_corner, k_jaw, k_nose in ((54, 12, 35), (48, 4, 31)):
        centre = 0.45 * L[k_corner] + 0.35 * L[k_jaw] + 0.2 * L[k_nose]
        w_puff = np.maximum(w_puff, np.exp(-0.5 * (np.linalg.norm(v - centre, axis=1) / 0.016) ** 2))
    w_puff *= skin * (1 - f.lip_zone)
    out["cheekPuff"] = (0.004 * w_puff)[:, None] * vn
    # nose sneer: the side of the nose and the skin beside the nostril go up
    for side, k in (("Left", 35), ("Right", 31)):
        centre = L[k] + np.array([0.003 * np.sign(L[k, 0] - mid), 0.006, 0.0])
        w = np.exp(-0.5 * (np.linalg.norm(v - centre, axis=1) / 0.008) ** 2) * skin
        out["noseSneer" + side] = w[:, None] * np.array([0.0, 0.0030, 0.0008])

    # --- upper face: the teacher's expression fields -----------------------------------------
    put("browDown", C["brow_lower"])
    out["browInnerUp"] = C["brow_inner_raise"]
    outer = 0.35 + 0.65 * smoothstep((np.abs(x - L[27, 0]) - 0.010) / 0.030)
    put("browOuterUp", C["brow_raise"] * outer[:, None])
    put("eyeWide", C["eye_wide"])
    # squint: the teacher's one field, cut into the lower lid (eyeSquint) and the cheek below
    # it (cheekSquint) at 4 mm under the lower-lid landmarks
    lid_y = np.where(x > mid, L[[46, 47], 1].mean(), L[[40, 41], 1].mean())
    lid_part = smoothstep((v[:, 1] - (lid_y - 0.004)) / 0.004 + 0.5)[:, None]
    put("eyeSquint", C["squint"] * lid_part)
    put("cheekSquint", C["squint"] * (1 - lid_part))

    # --- eyes: blink = the upper-face layer's blink (lids over the eyeball until they meet);
    # look = eyeball rotations about the eyeball's centre
    uf_names, uf = upper_face.basis(v)
    for side, ball in (("Left", EYEBALL_L), ("Right", EYEBALL_R)):
        out["eyeBlink" + side] = uf[uf_names.index("blink_" + side[0])]
        centre = v[ball].mean(0)
        ball_idx = np.arange(n)[ball]
        inward = -1.0 if side == "Left" else 1.0      # towards the nose: -X for the left eye
        for name, axis, angle in (("eyeLookUp", "x", -np.radians(25)), ("eyeLookDown", "x", np.radians(25)),
                                  ("eyeLookIn", "y", inward * np.radians(30)),
                                  ("eyeLookOut", "y", -inward * np.radians(30))):
            field = np.zeros((n, 3))
            field[ball_idx] = rotate_about(v[ball_idx], centre, axis, angle)
            out[name + side] = field
    # tongueOut stays zero: FLAME has no tongue
    return np.stack([out[name] for name in arkit.NAMES]).astype(np.float32)


def solve_weights(basis: np.ndarray) -> np.ndarray:
    """Per-vertex weights of the solver's data term: the lips count most (lip error is a max over
    lip vertices), then the mouth and jaw, then everything any shape moves; the rest barely."""
    topo = load_topology()
    moved = np.linalg.norm(basis, axis=-1).max(axis=0) > 1e-4
    w = np.where(moved, 1.0, 0.05)
    w[topo.regions["mouth_jaw"]] = 2.0
    w[topo.regions["lips"]] = 6.0
    return w.astype(np.float32)


def contact_sheet(template, basis, path, size=160, cols=9):
    from core.corpus.raster import label, render, write_png
    topo = load_topology()
    L = topo.landmarks(template)
    centre = np.array([L[27, 0], 0.5 * (L[19, 1] + 0.02 + L[8, 1]), 0.0])   # brows to chin
    names = ["neutral"] + list(arkit.NAMES)
    fields = np.concatenate([np.zeros((1,) + basis.shape[1:], np.float32), basis])
    rows = (len(names) + cols - 1) // cols
    sheet = np.full((rows * size, cols * size, 3), 20, np.uint8)
    for i, (name, d) in enumerate(zip(names, fields)):
        # tinted by how far each vertex moves (orange = 4 mm or more): millimetre shapes show
        heat = np.clip(np.linalg.norm(d, axis=1) / 0.004, 0, 1)[:, None]
        colors = (1 - heat) * 0.85 + heat * np.array([1.0, 0.55, 0.1])
        img = render(template + d, topo.faces, "front", size=size, center=centre, extent=0.175, colors=colors)
        label(img, name[:18])
        r, c = divmod(i, cols)
        sheet[r * size:(r + 1) * size, c * size:(c + 1) * size] = img
    write_png(path, sheet)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "core" / "assets" / "arkit_basis.npz"))
    ap.add_argument("--sheet", default=str(ROOT / "docs" / "arkit_basis.png"), help="contact sheet PNG ('' = none)")
    args = ap.parse_args(argv)
    template = read_mesh(ROOT / "core" / "assets" / "heads" / "template_neutral.ply")[0].astype(np.float64)
    basis = build(template)
    np.savez_compressed(args.out, names=np.array(arkit.NAMES), basis=basis.astype(np.float16),
                        vertex_weights=solve_weights(basis),
                        contact_pairs=deformers.template_fields().contact_pairs.astype(np.int32))
    peak = np.linalg.norm(basis, axis=-1).max(axis=1) * 1000
    for name, p in zip(arkit.NAMES, peak):
        print(f"{name:22s} peak {p:6.2f} mm")
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e3:.0f} kB)")
    if args.sheet:
        contact_sheet(template, basis, args.sheet)
        print(f"wrote {args.sheet}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
