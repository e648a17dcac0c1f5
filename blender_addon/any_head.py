"""Any head mesh: register the FLAME template to the selected head, then bake transferred motion.

Thin layer over ``core.registration`` and ``core.transfer`` (all maths there):

    register(obj)            fit the template to the mesh (automatic landmarks, or named points)
                             and store the result on the object: the fitted template and the
                             similarity as custom properties, the per-vertex correspondence as
                             mesh attributes (they travel with the mesh and are saved in the .blend)
    bake(obj, audio, ...)    the networks animate the fitted template; the motion is transferred
                             to the mesh's own vertices and written by the usual bake writer
                             (same shape keys, takes and Action as a FLAME bake)
    follow_jaw(obj, parts)   lower teeth / tongue objects follow the jaw rigidly (keyframed)

The user's mesh, Basis and other shape keys are never changed by ``register``; a failed
registration leaves nothing behind.
"""

from __future__ import annotations

import dataclasses

import importlib
import json
import time

import bpy
import numpy as np

from . import audio_source, compat, job
from . import bake as writer
from .engine import compact, core, errors

registration = importlib.import_module(core.__name__ + ".registration")
transfer = importlib.import_module(core.__name__ + ".transfer")
alignment = importlib.import_module(core.__name__ + ".alignment")

PROP = "speech_to_face_registration"      # JSON: similarity, fit measures, vertex count
FITTED_PROP = "speech_to_face_fitted"     # float array: fitted template (5023 x 3), object space
ATTR_TRIANGLE = "s2f_flame_triangle"
ATTR_BARY = "s2f_flame_barycentric"
ATTR_WEIGHT = "s2f_flame_weight"
ATTR_SIDE = "s2f_lip_side"


# --- reading the mesh ---------------------------------------------------------------------------

def mesh_polygons(mesh):
    """(loops, loop_start, loop_total): Blender's own polygon layout (quads and n-gons kept)."""
    loops = np.empty(len(mesh.loops), np.int32)
    mesh.loops.foreach_get("vertex_index", loops)
    n = len(mesh.polygons)
    starts = np.empty(n, np.int32)
    totals = np.empty(n, np.int32)
    mesh.polygons.foreach_get("loop_start", starts)
    mesh.polygons.foreach_get("loop_total", totals)
    return loops, starts, totals


def check_object(obj) -> None:
    problem = writer.target_problem(obj)
    if problem:
        raise errors.SpeechToFaceError(problem.replace("select the FLAME head mesh", "select the head mesh"))


# --- registration -------------------------------------------------------------------------------

def register(obj, landmarks: dict | None = None, progress=None, config=None):
    """Fit the FLAME template to ``obj`` and store the correspondence on it. Returns core's Registration.

    ``landmarks``: optional {name: (x, y, z)} in the object's local space, names from
    ``core.registration.USER_LANDMARKS`` (nose_tip, chin, eye_outer_left, ...)."""
    check_object(obj)
    mesh = obj.data
    v = writer.neutral_vertices(obj)
    polys = mesh_polygons(mesh)
    reg = registration.register(v, polys, landmarks=landmarks, progress=progress, what=f"'{obj.name}'",
                                config=config or registration.FitConfig())
    corr = transfer.bind(v, polys, reg)
    # Everything computed: only now write (nothing is left half-done on failure).
    _store(obj, reg, corr)
    return reg


def _store(obj, reg, corr) -> None:
    mesh = obj.data
    for name, kind, values in (
            (ATTR_TRIANGLE, "INT", corr.triangles.astype(np.int32)),
            (ATTR_BARY, "FLOAT_VECTOR", corr.barycentric.astype(np.float32).ravel()),
            (ATTR_WEIGHT, "FLOAT", corr.weights.astype(np.float32)),
            (ATTR_SIDE, "INT", corr.lip_side.astype(np.int32))):
        old = mesh.attributes.get(name)
        if old is not None:
            mesh.attributes.remove(old)
        attr = mesh.attributes.new(name, kind, "POINT")
        attr.data.foreach_set("vector" if kind == "FLOAT_VECTOR" else "value", values)
    sim = reg.similarity
    obj[FITTED_PROP] = reg.fitted.astype(np.float32).ravel().tolist()
    obj[PROP] = json.dumps({
        "vertices": len(mesh.vertices),
        "scale": float(sim.scale), "rotation": np.asarray(sim.rotation).tolist(),
        "translation": np.asarray(sim.translation).tolist(),
        "fit_face_mm": reg.fit_face_mm, "rigid_face_mm": reg.rigid_face_mm,
        "landmarks_from": reg.landmarks_from, "seconds": reg.seconds,
    })


def is_registered(obj) -> bool:
    return obj is not None and obj.type == "MESH" and PROP in obj.keys()


def clear_registration(obj) -> None:
    for key in (PROP, FITTED_PROP):
        if key in obj.keys():
            del obj[key]
    for name in (ATTR_TRIANGLE, ATTR_BARY, ATTR_WEIGHT, ATTR_SIDE):
        attr = obj.data.attributes.get(name)
        if attr is not None:
            obj.data.attributes.remove(attr)


def stored(obj):
    """(Registration-like record dict, fitted template (5023, 3), Correspondence) from the object."""
    if not is_registered(obj):
        raise errors.SpeechToFaceError(
            f"'{obj.name}' is not registered yet: run 'Fit FLAME to head' (any_head.register) first.")
    record = json.loads(obj[PROP])
    n = len(obj.data.vertices)
    if record.get("vertices") != n:
        raise errors.TopologyError(
            f"'{obj.name}' has {n} vertices but was registered with {record.get('vertices')}: "
            "the mesh was edited since; register it again.")
    fitted = np.asarray(obj[FITTED_PROP], np.float64).reshape(-1, 3)
    arrays = {}
    mesh = obj.data
    for key, name, kind, width in (("triangles", ATTR_TRIANGLE, "value", 1), ("barycentric", ATTR_BARY, "vector", 3),
                                   ("weights", ATTR_WEIGHT, "value", 1), ("lip_side", ATTR_SIDE, "value", 1)):
        attr = mesh.attributes.get(name)
        if attr is None:
            raise errors.TopologyError(f"'{obj.name}' lost its '{name}' attribute: register it again.")
        buf = np.empty(n * width, np.int32 if attr.data_type == "INT" else np.float32)
        attr.data.foreach_get(kind, buf)
        arrays[key] = buf
    return record, fitted, transfer.Correspondence.from_arrays(arrays)


# --- baking -------------------------------------------------------------------------------------

def bake(obj, audio: str = "", *, scene=None, start_frame=None, strip=None, progress=None,
         should_cancel=None, jaw_parts=(), **settings) -> job.BakeResult:
    """Bake speech onto a registered head of any topology (BakeSettings fields as keywords).

    ``jaw_parts``: separate objects (lower teeth, tongue) keyframed to follow the jaw."""
    t0 = time.perf_counter()
    scene = scene or bpy.context.scene
    s = job.BakeSettings(**settings)
    check_object(obj)
    _, fitted, corr = stored(obj)
    clip = job.read_clip(scene, audio, start_frame, strip)
    fps = audio_source.scene_fps(scene)
    infer_settings = job.BakeSettings(**{**s.__dict__, "mode": "PER_FRAME"})
    request = job.BakeRequest(obj.name, fitted, clip, fps, infer_settings, warnings=list(clip.warnings))
    outcome = job.infer(request, progress, should_cancel)
    moved = transfer.transfer(outcome.displacements, corr)          # (T, N, 3), object space
    upper = outcome.upper_face
    if upper is not None:   # the upper-face layer's keys move to this head like the lips' motion
        upper = dataclasses.replace(upper, keys=transfer.transfer(upper.keys, corr).astype(np.float32))
    cb = None
    if s.mode == "COMPACT":
        tol = s.tolerance if s.tolerance > 0 else (
            compact.default_tolerance(writer.neutral_vertices(obj)) * s.tolerance_mm / (compact.DEFAULT_TOLERANCE_M * 1000))
        cb = compact.fit_compact(moved, tol, s.max_components)
    info = {"fps": fps, "audio": clip.source, "intensity": s.intensity, "description": outcome.description,
            "trained": outcome.trained, "target": "any"}
    if cb is not None:
        info.update(max_error=cb.max_error, error_bound=cb.bound, tolerance=cb.tolerance)
    strip_obj = audio_source.add_strip_for(scene, clip) if clip.new_strip_path else None
    try:
        record = writer.write_bake(obj, start_frame=clip.start_frame, displacements=moved if cb is None else None,
                                   compact_basis=cb, upper_face=upper, take=s.take, own_action=s.own_action,
                                   info=info)
    except Exception:
        if strip_obj is not None:
            compat.remove_strip(scene, strip_obj)
        raise
    writer.cover_frame_range(scene, clip.start_frame, record["frames"])
    if jaw_parts:
        follow_jaw(obj, jaw_parts, outcome.displacements, clip.start_frame)
    return job.BakeResult(
        object_name=obj.name, take=writer.take_name(s.take), mode=record["mode"], start_frame=clip.start_frame,
        frames=record["frames"], fps=fps, shape_keys=len(record["keys"]), trained=outcome.trained,
        description=outcome.description, max_error=cb.max_error if cb is not None else 0.0,
        error_bound=cb.bound if cb is not None else 0.0, warnings=list(request.warnings) + list(outcome.notes),
        seconds=time.perf_counter() - t0, strip_name=strip_obj.name if strip_obj is not None else "")


def follow_jaw(obj, parts, displacements, start_frame: int) -> None:
    """Keyframe ``parts`` (lower teeth, tongue: separate objects) to move rigidly with the jaw.

    ``displacements``: the (T, 5023, 3) FLAME motion of the fitted template in ``obj``'s local
    space (what the bake animated). Each part keeps its rest placement and gets, per frame,
    head_world @ jaw_t @ head_world^-1 @ part_rest_world."""
    from mathutils import Matrix
    _, fitted, _ = stored(obj)
    jaw = transfer.jaw_motion(fitted, displacements)
    head = obj.matrix_world.copy()
    head_inv = head.inverted()
    for part in parts:
        rest = part.matrix_world.copy()
        for k, m in enumerate(jaw):
            part.matrix_world = head @ Matrix(m.tolist()) @ head_inv @ rest
            rotation = {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}.get(
                part.rotation_mode, "rotation_euler")
            for path in ("location", rotation, "scale"):
                part.keyframe_insert(path, frame=start_frame + k)
        part.matrix_world = rest
