"""Bake speech onto a head of any topology without opening Blender's window.

    python tools/bake_any_head.py --mesh character.obj --audio line.wav --out line.blend
    blender -b -P tools/bake_any_head.py -- --blend shot.blend --object Face --jaw-parts LowerTeeth,Tongue \\
        --audio line.wav --out shot_lips.blend
    python tools/bake_any_head.py --mesh head.glb --landmarks points.json --audio line.wav --out line.blend

The FLAME template is fitted to the head (automatic landmarks, or --landmarks: a JSON object of
named points in the mesh's own coordinates, e.g. {"nose_tip": [x, y, z], "chin": [...], ...};
names: nose_tip, nose_bridge, subnasale, chin, eye_outer_right, eye_inner_right, eye_inner_left,
eye_outer_left, mouth_corner_right, mouth_corner_left, upper_lip, lower_lip), the networks
animate the fitted template and the motion is transferred to the head's own vertices as shape
keys. A head already fitted in the .blend is not fitted again unless --refit. Meshes (.obj, .ply,
.fbx, .glb/.gltf) are read with Blender's own importers (vertex order does not matter here).
Exit status 1 with one "error:" line on bad input; nothing is written then.
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from tools.blender_entry import require_bpy  # noqa: E402

require_bpy(__file__)


def parser() -> argparse.ArgumentParser:
    from blender_addon import headless
    ap = argparse.ArgumentParser(prog="bake_any_head.py", description=__doc__.split("\n\n")[0])
    headless.add_input_options(ap, "head mesh: .obj, .ply, .fbx, .glb or .gltf")
    ap.add_argument("--landmarks", default="", help="JSON file of named points (when automatic fitting fails)")
    ap.add_argument("--refit", action="store_true", help="fit again even if the head is already fitted")
    ap.add_argument("--jaw-parts", default="", help="comma-separated objects (in --blend, or in the --mesh file) that follow the jaw")
    headless.add_bake_options(ap)
    return ap


def main(argv=None) -> int:
    from blender_addon import headless
    from blender_addon.engine import errors
    args = parser().parse_args(headless.script_args(argv))
    if not args.out.lower().endswith(".blend"):
        headless.fail(f"--out must be a .blend file, got {args.out}")
    if bool(args.mesh) == bool(args.blend):
        headless.fail("give exactly one of --mesh or --blend (with --object)")
    try:
        landmarks = headless.read_landmarks(args.landmarks) if args.landmarks else None
        result, reg = headless.bake_any_file(
            args, args.mesh, os.path.abspath(args.audio), args.out, fps=args.fps, start_frame=args.start_frame,
            blend=args.blend, object_name=args.object, landmarks=landmarks, refit=args.refit,
            jaw_parts=[p for p in args.jaw_parts.split(",") if p], take=args.take, **headless.settings_from(args))
    except (errors.SpeechToFaceError, OSError, ValueError) as exc:
        headless.fail(str(exc))
    if reg is not None:
        print(reg.summary())
    headless.print_result(result, args.out)
    return 0


if __name__ == "__main__":
    from blender_addon import headless as _headless
    code = _headless.run_main(main)   # Ctrl-C: one line and status 130, as tools/bake.py
    sys.stdout.flush()
    sys.exit(code)
