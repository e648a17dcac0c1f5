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
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from tools.blender_entry import require_bpy  # noqa: E402

require_bpy(__file__)

IMPORTERS = {".obj": "wm.obj_import", ".ply": "wm.ply_import", ".fbx": "import_scene.fbx",
             ".glb": "import_scene.gltf", ".gltf": "import_scene.gltf"}


def parser() -> argparse.ArgumentParser:
    from blender_addon import headless
    ap = argparse.ArgumentParser(prog="bake_any_head.py", description=__doc__.split("\n\n")[0])
    src = ap.add_argument_group("head")
    src.add_argument("--mesh", default="", help="head mesh: .obj, .ply, .fbx, .glb or .gltf")
    src.add_argument("--blend", default="", help="or a .blend holding the head...")
    src.add_argument("--object", default="", help="...and the head object's name in it")
    ap.add_argument("--landmarks", default="", help="JSON file of named points (when automatic fitting fails)")
    ap.add_argument("--refit", action="store_true", help="fit again even if the head is already fitted")
    ap.add_argument("--jaw-parts", default="", help="comma-separated objects (in --blend) that follow the jaw")
    ap.add_argument("--audio", required=True, help="speech audio (WAV/FLAC/OGG/MP3...)")
    ap.add_argument("--out", required=True, help="output .blend")
    ap.add_argument("--take", default="main", help="name of this bake (re-baking a take replaces it)")
    headless.add_bake_options(ap)
    return ap


def import_mesh(path: str):
    import bpy
    from blender_addon.engine import errors
    ext = os.path.splitext(path)[1].lower()
    if ext not in IMPORTERS:
        raise errors.SpeechToFaceError(f"Unsupported mesh format '{ext}': use one of {sorted(IMPORTERS)}.")
    if not os.path.isfile(path):
        raise errors.SpeechToFaceError(f"Mesh file not found: {path}")
    if ext in (".glb", ".gltf"):
        import addon_utils
        addon_utils.enable("io_scene_gltf2", default_set=True)
    before = set(bpy.data.objects)
    group, name = IMPORTERS[ext].split(".")
    getattr(getattr(bpy.ops, group), name)(filepath=os.path.abspath(path))
    meshes = [o for o in bpy.data.objects if o not in before and o.type == "MESH"]
    if not meshes:
        raise errors.SpeechToFaceError(f"{path} holds no mesh.")
    # The largest mesh is the head (eyes and teeth in the same file are smaller).
    return max(meshes, key=lambda o: len(o.data.vertices))


def main(argv=None) -> int:
    from blender_addon import any_head, api, headless
    from blender_addon.engine import errors
    args = parser().parse_args(headless.script_args(argv))
    if not args.out.lower().endswith(".blend"):
        headless.fail(f"--out must be a .blend file, got {args.out}")
    if bool(args.mesh) == bool(args.blend):
        headless.fail("give exactly one of --mesh or --blend (with --object)")
    try:
        landmarks = None
        if args.landmarks:
            with open(args.landmarks, encoding="utf-8") as fh:
                landmarks = {k: tuple(map(float, v)) for k, v in json.load(fh).items()}
        if args.blend:
            scene = headless.open_blend(args.blend)
            obj = headless.pick_object(args.object)
        else:
            scene = headless.new_scene()
            obj = import_mesh(args.mesh)
        if args.fps is not None:
            api.set_fps(scene, args.fps)
        elif not args.blend:
            api.set_fps(scene, 30.0)
        parts = []
        for name in filter(None, args.jaw_parts.split(",")):
            part = scene.objects.get(name)
            if part is None:
                raise errors.SpeechToFaceError(f"No object named '{name}' for --jaw-parts.")
            parts.append(part)
        if args.refit or landmarks or not any_head.is_registered(obj):
            reg = any_head.register(obj, landmarks=landmarks)
            print(reg.summary())
        result = any_head.bake(obj, os.path.abspath(args.audio), scene=scene, start_frame=args.start_frame,
                               take=args.take, jaw_parts=parts, **headless.settings_from(args))
        scene.frame_current = result.start_frame
        headless.save_blend(args.out, compress=args.compress, pack_audio=not args.no_pack_audio)
    except (errors.SpeechToFaceError, OSError, ValueError) as exc:
        headless.fail(str(exc))
    headless.print_result(result, args.out)
    return 0


if __name__ == "__main__":
    from blender_addon import headless as _headless
    code = _headless.run_main(main)   # Ctrl-C: one line and status 130, as tools/bake.py
    sys.stdout.flush()
    sys.exit(code)
