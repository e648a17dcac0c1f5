"""Make test heads with other topologies from the project's FLAME heads (needs the bpy module).

    python tools/make_test_heads.py [--out build/test_heads] [--only decimated,voxel]

Each head is one of Blender's own remeshers applied to a FLAME head, then moved into a random
frame (rotation about a random axis, scale, translation) so nothing about FLAME's vertex order,
units or pose survives. Written as ``<name>.npz``: ``vertices`` (N, 3), the polygons as Blender
stores them (``loops``, ``loop_start``, ``loop_total``), the similarity that was applied
(``scale``, ``rotation``, ``translation``: user = scale * R @ flame + t) and ``source`` (the FLAME
head it came from). tools/evaluate_transfer.py uses them; the ground truth of a test vertex is
the FLAME surface point it came from.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core import meshio  # noqa: E402

HEADS = ROOT / "core" / "assets" / "heads"

# name: (source head, modifier stack or "quadriflow", seed of the random frame)
RECIPES = {
    "decimated_2k": ("sample_neutral", [("DECIMATE", {"ratio": 0.4})], 1),
    # FLAME is an open surface (neck, mouth opening): a voxel remesher needs a closed volume, so
    # the skin is first thickened 4 mm inwards (the outer side stays where it was).
    "voxel_40k": ("sample_neutral", [("SOLIDIFY", {"thickness": 0.004, "offset": -1.0}),
                                     ("REMESH", {"mode": "VOXEL", "voxel_size": 0.0035})], 2),
    "quadriflow_7k": ("sample_neutral", "quadriflow", 3),
    "ngon_dissolved": ("sample_neutral", [("SUBSURF", {"levels": 1, "render_levels": 1}),
                                          ("DECIMATE", {"decimate_type": "DISSOLVE", "angle_limit": 0.05})], 4),
    "subdivided_30k": ("sample_neutral", [("SUBSURF", {"levels": 1, "render_levels": 1})], 5),
    "dense_60k": ("sample_neutral", [("SUBSURF", {"levels": 2, "render_levels": 2}), ("DECIMATE", {"ratio": 0.5})], 6),
    "dense_100k": ("sample_neutral", [("SUBSURF", {"levels": 2, "render_levels": 2}), ("DECIMATE", {"ratio": 0.83})], 7),
}
TINY = {"decimated_2k", "quadriflow_7k"}


def random_frame(seed: int):
    rng = np.random.default_rng(seed)
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    angle = rng.uniform(0, 2 * np.pi)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
    scale = float(np.exp(rng.uniform(np.log(0.5), np.log(120.0))))   # from half a metre to centimetres-ish
    trans = rng.uniform(-2, 2, 3) * scale
    return scale, rot, trans


def _object_from(vertices, faces, name):
    import bpy
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(np.asarray(vertices).tolist(), [], np.asarray(faces).tolist())
    mesh.update()
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def _mesh_arrays(mesh):
    n = len(mesh.vertices)
    co = np.empty(n * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    loops = np.empty(len(mesh.loops), np.int32)
    mesh.loops.foreach_get("vertex_index", loops)
    starts = np.empty(len(mesh.polygons), np.int32)
    totals = np.empty(len(mesh.polygons), np.int32)
    mesh.polygons.foreach_get("loop_start", starts)
    mesh.polygons.foreach_get("loop_total", totals)
    return co.reshape(-1, 3).astype(np.float64), loops, starts, totals


def remesh(vertices, faces, recipe, name="head"):
    """Vertices and polygons of a FLAME head after Blender's remesher ``recipe``."""
    import bpy
    bpy.ops.wm.read_factory_settings(use_empty=True)
    obj = _object_from(vertices, faces, name)
    if recipe == "quadriflow":
        bpy.context.view_layer.objects.active = obj
        obj.select_set(True)
        result = bpy.ops.object.quadriflow_remesh(target_faces=8000, use_mesh_symmetry=False,
                                                  use_preserve_sharp=False, seed=0)
        if "FINISHED" not in result:
            raise RuntimeError(f"QuadriFlow failed: {result}")
        return _mesh_arrays(obj.data)
    for kind, settings in recipe:
        mod = obj.modifiers.new(kind, kind)
        for key, value in settings.items():
            setattr(mod, key, value)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        return _mesh_arrays(mesh)
    finally:
        evaluated.to_mesh_clear()


def make(name: str, out_dir: Path) -> Path:
    source, recipe, seed = RECIPES[name]
    v, f = meshio.read_mesh(HEADS / f"{source}.ply")
    co, loops, starts, totals = remesh(v, f, recipe, name)
    scale, rot, trans = random_frame(seed)
    user = scale * co @ rot.T + trans
    path = out_dir / f"{name}.npz"
    np.savez_compressed(path, vertices=user, loops=loops, loop_start=starts, loop_total=totals,
                        scale=scale, rotation=rot, translation=trans, source=source, recipe=str(recipe))
    return path


def ensure(names, out_dir) -> list[Path]:
    """The named test heads, made if missing."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = out_dir / f"{name}.npz"
        if not path.exists():
            make(name, out_dir)
        paths.append(path)
    return paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "build" / "test_heads"))
    ap.add_argument("--only", default="", help="comma-separated names from: " + ", ".join(RECIPES))
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(RECIPES)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        ap.error(f"unknown test heads {unknown}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        t0 = time.perf_counter()
        path = make(name, out)
        with np.load(path) as d:
            sizes = np.bincount(d["loop_total"])
            kinds = ", ".join(f"{int(c)} {k}-gons" for k, c in enumerate(sizes) if c and k > 0)
            print(f"{path.name}: {len(d['vertices'])} vertices ({kinds}), scale {float(d['scale']):.3g}, "
                  f"{time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
