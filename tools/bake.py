"""Bake speech onto a FLAME head without opening Blender's window.

    blender -b -P tools/bake.py -- --mesh head.ply --audio line.wav --out line.blend
    python tools/bake.py --mesh head.ply --audio line.wav --out line.blend      (bpy wheel)
    python tools/bake.py --blend shot.blend --object Head --audio line.wav --start-frame 101 --out shot_lips.blend

The output .blend holds the head with its shape-key animation and the sound strip starting on
the same frame (audio packed unless --no-pack-audio). On failure: one "error:" line, exit
status 1 (bad input), 2 (bad usage) or 130 (interrupted); nothing is written then.
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from tools.blender_entry import require_bpy  # noqa: E402

require_bpy(__file__)


def parser():
    from blender_addon import headless
    ap = headless.ArgumentParser(prog="bake.py", description=__doc__.split("\n\n")[0],
                                 epilog="Run under Blender as: blender -b -P tools/bake.py -- ARGS")
    headless.add_input_options(ap, "FLAME-topology head as .ply or .obj")
    ap.add_argument("--target", choices=["flame", "arkit", "any"], default="flame",
                    help="flame: a FLAME-topology head (default); arkit: the 52 ARKit weights on a character's "
                         "ARKit-named shape keys (--blend/--object), or on --mesh given the project's ARKit shapes; "
                         "any: a head of any topology (see tools/bake_any_head.py for its own options)")
    ap.add_argument("--progress", action="store_true",
                    help="print 'progress: N %%' lines on stderr while baking a FLAME head (every 10 %%)")
    ap.add_argument("--arkit-csv", default="", help="--target arkit: also write the weights as Live Link Face CSV")
    ap.add_argument("--arkit-json", default="", help="--target arkit: also write the weights as JSON")
    headless.add_bake_options(ap)
    return ap


def main(argv=None) -> int:
    from blender_addon import headless
    raw = headless.script_args(argv)
    rest = [a for i, a in enumerate(raw) if a != "--target=any" and not (
        a == "--target" and raw[i + 1:i + 2] == ["any"]) and not (a == "any" and raw[i - 1:i] == ["--target"])]
    if len(rest) < len(raw):
        # heads of any topology have their own tool (fitting, landmarks, jaw-following parts)
        from tools import bake_any_head
        return bake_any_head.main(rest)
    args = parser().parse_args(raw)
    if not args.out.lower().endswith(".blend"):
        headless.fail(f"--out must be a .blend file, got {args.out}")
    if bool(args.mesh) == bool(args.blend):
        headless.fail("give exactly one of --mesh (OBJ/PLY) or --blend (with --object)")
    if args.object and not args.blend:
        headless.fail("--object names a head inside --blend; with --mesh leave it out")
    if (args.arkit_csv or args.arkit_json) and args.target != "arkit":
        headless.fail("--arkit-csv and --arkit-json go with --target arkit")
    if args.target == "arkit":
        done = headless.bake_arkit_file(
            args, args.mesh, os.path.abspath(args.audio), args.out, fps=args.fps, start_frame=args.start_frame,
            blend=args.blend, object_name=args.object, csv_path=args.arkit_csv, json_path=args.arkit_json,
            **headless.settings_from(args))
        print(f"ARKit: {done['frames']} frames on '{done['object']}': {done['report']}")
        print(f"networks: {done['description']}")
        for path in (done["csv"], done["json"]):
            if path:
                print(f"wrote {os.path.abspath(path)}")
        print(f"wrote {os.path.abspath(args.out)} ({os.path.getsize(args.out) / 1e6:.1f} MB)")
        return 0
    result = headless.bake_file(
        args, args.mesh, os.path.abspath(args.audio), args.out, fps=args.fps, start_frame=args.start_frame,
        blend=args.blend, object_name=args.object, take=args.take,
        progress=headless.progress_printer() if args.progress else None, **headless.settings_from(args))
    headless.print_result(result, args.out)
    return 0


if __name__ == "__main__":
    from blender_addon import headless as _headless
    code = _headless.run_main(main)
    sys.stdout.flush()
    sys.exit(code)
