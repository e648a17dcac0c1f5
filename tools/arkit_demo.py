"""Build an ARKit-rigged character and bake speech onto its ARKit shape keys -> .blend (+ CSV, JSON).

    python tools/arkit_demo.py --out out/arkit_demo.blend [--audio speech.wav] [--prefix blendShape1.]
    ... --sheet docs/arkit_demo.png     (mouth frames read back from Blender + the weight curves)

The character is the bundled FLAME head given the project's 52 ARKit shapes as its own shape
keys (named with ``--prefix``, to exercise the name matching; ``--drop`` leaves some out); the
ARKit target then keys only the ARKit-named keys it finds and says which of the 52 it found.
Runs on the bpy wheel or inside Blender (blender -b -P tools/arkit_demo.py -- ARGS).
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


CURVES = (("jawOpen", (255, 80, 80)), ("mouthClose", (80, 220, 80)), ("mouthFunnel", (90, 140, 255)),
          ("mouthPucker", (240, 220, 60)), ("mouthStretchLeft", (230, 120, 230)), ("mouthPressLeft", (80, 220, 220)))


def sheet(path, obj, weights, columns: int = 8, size: int = 150):
    """Mouth crops of the mesh as Blender evaluates it (shape keys + Action) at evenly spaced
    frames, over a chart of six weight curves (colours in CURVES, frames marked)."""
    import bpy
    import numpy as np

    from core import arkit
    from core.corpus.raster import label, render, write_png
    from core.flame import load_topology
    topo = load_topology()
    scene = bpy.context.scene
    frames = np.linspace(1, len(weights), columns + 2).astype(int)[1:-1]
    jaw = weights[:, arkit.NAMES.index("jawOpen")]
    frames[np.argmin(np.abs(frames - (np.argmax(jaw) + 1)))] = int(np.argmax(jaw)) + 1
    tiles = []
    for f in sorted(set(int(x) for x in frames)):
        scene.frame_set(f)
        mesh = obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
        v = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", v)
        v = v.reshape(-1, 3)
        lm = topo.landmarks(v)
        centre = 0.5 * (lm[48] + lm[54])
        tiles.append(label(render(v, topo.faces, "front", size=size, center=centre, extent=0.08), f"frame {f}"))
    top = np.concatenate(tiles, axis=1)
    h, w = 140, top.shape[1]
    chart = np.full((h, w, 3), 24, np.uint8)
    x = np.linspace(0, w - 1, len(weights)).astype(int)
    for name, colour in CURVES:
        y = (h - 8 - weights[:, arkit.NAMES.index(name)] * (h - 20)).astype(int)
        for a in range(len(x) - 1):
            lo, hi = sorted((y[a], y[a + 1]))
            chart[lo:hi + 1, x[a]:x[a + 1] + 1] = colour
    for f in sorted(set(int(v) for v in frames)):
        chart[:, x[f - 1]] = (90, 90, 90)
    label(chart, "weights 0-1: jaw red close green funnel blue pucker yellow stretch magenta press cyan")
    write_png(path, np.concatenate([top, chart], axis=0))


def main(argv=None) -> int:
    import bpy

    from blender_addon import api, arkit_target, bake, compat
    from core.errors import SpeechToFaceError
    from core.pipeline import Animator

    if argv is None:
        argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output .blend")
    ap.add_argument("--audio", default=os.path.join(ROOT, "core", "assets", "audio", "sample_speech.wav"))
    ap.add_argument("--head", default=os.path.join(ROOT, "core", "assets", "heads", "sample_neutral.ply"))
    ap.add_argument("--prefix", default="blendShape1.", help="shape key name prefix")
    ap.add_argument("--drop", default="tongueOut,cheekPuff",
                    help="comma-separated ARKit names the character does not have")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--sheet", default="", help="PNG: mouth frames evaluated in Blender and the weight curves")
    args = ap.parse_args(argv)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    api.set_fps(scene, args.fps)
    obj = api.load_head(args.head, name="Character")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    try:
        arkit_target.add_basis_keys(obj, prefix=args.prefix)
        for name in filter(None, args.drop.split(",")):
            kb = obj.data.shape_keys.key_blocks.get(args.prefix + name.strip())
            if kb is not None:
                obj.shape_key_remove(kb)
        animator = Animator.load()
        stem = os.path.splitext(args.out)[0]
        result = arkit_target.bake([obj], args.audio, animator=animator, fps=args.fps, start_frame=1,
                                   csv_path=stem + ".csv", json_path=stem + ".json")
    except SpeechToFaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    frames = len(result["weights"])
    compat.new_sound_strip(scene, "speech", os.path.abspath(args.audio), 1, 1)
    bake.cover_frame_range(scene, 1, frames)
    scene.frame_end = frames
    bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(args.out))
    if args.sheet:
        sheet(args.sheet, obj, result["weights"])
        print(f"wrote {args.sheet}")
    print(f"{obj.name}: {arkit_target.report(result['objects'][obj.name])}")
    print(f"wrote {args.out}, {result['csv']}, {result['json']} ({frames} frames, {animator.describe()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
