"""Python API for scripted baking (the headless tools use it too).

In Blender, with the extension installed from the User Default repository::

    from bl_ext.user_default.speech_to_face import api as s2f
    head = s2f.load_head("/path/head.ply")
    result = s2f.bake(head, "/path/line01.wav", start_frame=1)
    print(result.summary())

From a repository checkout (``python`` with the bpy wheel, or ``blender -b -P``), put the
checkout on ``sys.path`` and ``from blender_addon import api as s2f``.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction

import bpy
import numpy as np

from . import audio_source, job
from . import bake as writer
from .engine import errors, limits, meshio
from .job import BakeResult, BakeSettings

__all__ = ["BakeResult", "BakeSettings", "load_head", "set_fps", "bake", "bake_takes", "bake_one_take", "remove_bake",
           "takes", "SpeechToFaceError"]
SpeechToFaceError = errors.SpeechToFaceError


def load_head(filepath: str, name: str = "", scene=None):
    """A new object from a FLAME-topology .ply/.obj, vertex order kept exactly.

    Read with core.meshio rather than Blender's importers (the OBJ importer drops unused
    vertices and reorders nothing else, but counts must be exact). FLAME is Y-up; the object
    is rotated +90 degrees about X so the head stands up in Blender's Z-up world (the mesh data
    keeps FLAME's coordinates).
    """
    scene = scene or bpy.context.scene
    vertices, faces = meshio.read_mesh(filepath)
    name = name or os.path.splitext(os.path.basename(filepath))[0]
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", vertices.astype("float32").ravel())
    n = len(faces)
    mesh.loops.add(n * 3)
    mesh.loops.foreach_set("vertex_index", faces.astype("int32").ravel())
    mesh.polygons.add(n)
    mesh.polygons.foreach_set("loop_start", (3 * np.arange(n)).astype(np.int32))
    mesh.polygons.foreach_set("loop_total", np.full(n, 3, np.int32))
    mesh.update(calc_edges=True)
    mesh.validate(clean_customdata=False)
    if len(mesh.vertices) != len(vertices):
        raise errors.TopologyError(f"{filepath}: mesh changed while loading ({len(vertices)} -> {len(mesh.vertices)} vertices).")
    mesh.shade_smooth()
    obj = bpy.data.objects.new(name, mesh)
    obj.rotation_euler = (math.pi / 2, 0.0, 0.0)
    scene.collection.objects.link(obj)
    layer = bpy.context.view_layer if scene == bpy.context.scene else scene.view_layers[0]
    layer.objects.active = obj
    return obj


def set_fps(scene, fps: float) -> None:
    """Scene rate as Blender stores it: integer fps / fps_base (29.97 -> 30 / 1.001)."""
    fps = limits.check_fps(fps)
    whole = round(fps)
    if abs(fps - whole) < 1e-6:
        scene.render.fps, scene.render.fps_base = int(whole), 1.0
        return
    ntsc = round(fps * 1.001)
    if abs(ntsc / 1.001 - fps) < 5e-3:  # 23.976, 29.97, 59.94: NTSC rates
        scene.render.fps, scene.render.fps_base = int(ntsc), 1.001
        return
    frac = Fraction(fps).limit_denominator(1000)
    scene.render.fps = max(1, int(math.ceil(fps)))
    scene.render.fps_base = scene.render.fps / float(frac)


def bake(obj, audio: str = "", *, scene=None, start_frame=None, strip=None, progress=None,
         should_cancel=None, **settings) -> BakeResult:
    """Bake speech onto ``obj``.

    ``audio``: a file path (added as a sound strip at ``start_frame``, default the current
    frame); empty to use ``strip`` or the scene's active sound strip. ``settings`` are
    BakeSettings fields: mode ("PER_FRAME"/"COMPACT"), intensity, encoder, backend, device,
    weights_dir, allow_random (default False: missing trained weights are an error),
    tolerance_mm, take, own_action, allow_large (per-frame files over 1 GB). Raises
    SpeechToFaceError (with nothing changed) on bad input or settings out of range.
    """
    scene = scene or bpy.context.scene
    return job.run(scene, obj, BakeSettings(**settings), audio_path=audio, start_frame=start_frame,
                   strip=strip, progress=progress, should_cancel=should_cancel)


def bake_takes(obj, audio_files, *, scene=None, start_frame=1, on_item=None, **settings):
    """One take per clip on one object, each with its own Action (named S2F_<take>_<mesh>).

    The last clip's Action is left assigned; the others keep a fake user so they are saved.
    Returns [(path, BakeResult or SpeechToFaceError)], continuing past failing clips.
    """
    scene = scene or bpy.context.scene
    out = []
    for i, path in enumerate(audio_files):
        take = writer.take_name(os.path.splitext(os.path.basename(path))[0])
        try:
            result = bake_one_take(obj, path, scene=scene, start_frame=start_frame, take=take, **settings)
            out.append((path, result))
        except errors.SpeechToFaceError as exc:
            out.append((path, exc))
        if on_item is not None:
            on_item(i, path, out[-1][1])
    return out


def bake_one_take(obj, path, *, scene, start_frame, take, bake_fn=None, **settings) -> BakeResult:
    """One clip as its own take and Action. ``bake_fn``: the bake to run (default ``bake``, a FLAME
    head; ``any_head.bake`` for a registered head of another topology)."""
    result = (bake_fn or bake)(obj, path, scene=scene, start_frame=start_frame, take=take, own_action=True, **settings)
    record = writer.takes(obj)[result.take]
    action = bpy.data.actions.get(record["action"])
    if action is not None:
        action.use_fake_user = True
    # Each take keeps its own sound strip; only the latest one is heard.
    for s in audio_source.compat.sound_strips(scene):
        s.mute = s.name != result.strip_name
    return result


def takes(obj) -> dict:
    """What Speech to Face baked on ``obj``: {take: record}."""
    return writer.takes(obj)


def remove_bake(obj, take: str | None = None) -> None:
    """Remove one take (or all) - shape keys, F-curves, Actions - leaving the user's keys."""
    if take:
        writer.remove_take(obj, writer.take_name(take))
    else:
        writer.remove_all(obj)
