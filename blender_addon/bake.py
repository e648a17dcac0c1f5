"""The bake writer: predicted motion -> shape keys + a shape-key Action. No maths here.

What is written is recorded on the mesh's shape-key datablock (``Key["speech_to_face"]``, a
JSON string) and every key is named ``S2F_<take>_...``, so a re-bake removes exactly the
previous bake of the same take and nothing the user made. The user's Basis and other keys are
never touched; their animation keeps playing.
"""

from __future__ import annotations

import json
import re

import bpy
import numpy as np

from . import compat
from .engine import errors, flame

TAG_PROP = "speech_to_face"
KEY_PREFIX = "S2F_"
DEFAULT_TAKE = "main"


# --- reading the target -------------------------------------------------------------------------

def target_problem(obj) -> str:
    """Why ``obj`` cannot be baked (empty string when it can). Cheap: no topology check."""
    return editable_mesh_problem(obj, "the FLAME head mesh")


def editable_mesh_problem(obj, select: str) -> str:
    """Why shape keys and their animation cannot be written on ``obj`` (empty string when they
    can): not a mesh, linked, in Edit Mode, absolute keys, a linked Action. ``select`` names what
    the user should pick instead; every bake target shares these checks."""
    if obj is None:
        return f"No active object: select {select}."
    if obj.type != "MESH":
        return f"'{obj.name}' is a {obj.type.lower()}, not a mesh: select {select}."
    if obj.library is not None or obj.data.library is not None:
        lib = (obj.library or obj.data.library).filepath
        return f"'{obj.name}' is linked from {lib}: make it local (Object > Library Override or Make Local) first."
    if obj.override_library is not None and not obj.data.is_editable:
        return f"'{obj.name}' uses linked mesh data that cannot be edited: make the mesh local first."
    if obj.mode == "EDIT":
        return f"'{obj.name}' is in Edit Mode: switch to Object Mode (edits would overwrite the shape keys)."
    key = obj.data.shape_keys
    if key is not None and not key.use_relative:
        return f"'{obj.name}' uses absolute shape keys: enable Relative in its Shape Keys panel."
    if key is not None and key.animation_data is not None and key.animation_data.action is not None \
            and key.animation_data.action.library is not None:
        return (f"The shape keys of '{obj.name}' play a linked Action ({key.animation_data.action.name}): "
                "make it local first.")
    return ""


def triangles(mesh) -> np.ndarray:
    """(F, 3) vertex indices of the mesh's faces; TopologyError if any face is not a triangle."""
    n = len(mesh.polygons)
    totals = np.empty(n, np.int32)
    mesh.polygons.foreach_get("loop_total", totals)
    if n and (totals != 3).any():
        bad = int((totals != 3).sum())
        raise errors.TopologyError(
            f"'{mesh.name}' has {bad} faces that are not triangles; FLAME is triangulated "
            "(did it get converted to quads? re-import the original head)."
        )
    loops = np.empty(len(mesh.loops), np.int32)
    mesh.loops.foreach_get("vertex_index", loops)
    starts = np.empty(n, np.int32)
    mesh.polygons.foreach_get("loop_start", starts)
    return loops[starts[:, None] + np.arange(3)[None, :]] if n else np.zeros((0, 3), np.int32)


def neutral_vertices(obj) -> np.ndarray:
    """The rest shape motion is added to: the reference (Basis) key if any, else the vertices."""
    mesh = obj.data
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    key = mesh.shape_keys
    if key is not None and key.reference_key is not None:
        _points(key.reference_key).foreach_get("co", co)
    else:
        mesh.vertices.foreach_get("co", co)
    return co.reshape(-1, 3).astype(np.float64)


def check_target(obj) -> np.ndarray:
    """Raise a SpeechToFaceError naming what is wrong, or return the neutral vertices."""
    problem = target_problem(obj)
    if problem:
        raise errors.SpeechToFaceError(problem)
    mesh = obj.data
    n = len(mesh.vertices)
    if n != flame.NUM_VERTICES:  # before reading faces: say the simple thing first
        flame.validate_mesh(np.zeros((n, 3)), what=f"'{obj.name}'")
    v = neutral_vertices(obj)
    flame.validate_mesh(v, triangles(mesh), what=f"'{obj.name}'")
    return v


# --- records of what was baked --------------------------------------------------------------------

def takes(obj) -> dict:
    key = obj.data.shape_keys if obj is not None and obj.type == "MESH" else None
    if key is None or TAG_PROP not in key.keys():
        return {}
    try:
        return json.loads(key[TAG_PROP])
    except (TypeError, ValueError):
        return {}


def _save_takes(key, data: dict) -> None:
    if data:
        key[TAG_PROP] = json.dumps(data, sort_keys=True)
    elif TAG_PROP in key.keys():
        del key[TAG_PROP]


def take_name(text: str) -> str:
    """A safe, short take name (it becomes part of shape-key and Action names)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", text or DEFAULT_TAKE).strip("_") or DEFAULT_TAKE
    return name[:40]


def _key_path(name: str) -> str:
    return f'key_blocks["{bpy.utils.escape_identifier(name)}"].value'


def _points(kb):
    return kb.points if hasattr(kb, "points") else kb.data


def remove_take(obj, take: str = DEFAULT_TAKE) -> bool:
    """Delete one take's shape keys and F-curves. True if anything went.

    Only the F-curves that drive this take's keys are removed, from the take's Action and from
    the Action assigned now (the user may have keyed their own shapes into the Action a bake
    created). The Action itself goes only when the bake created it and nothing else is left in it.
    """
    key = obj.data.shape_keys
    if key is None:
        return False
    data = takes(obj)
    record = data.pop(take, None)
    prefix = f"{KEY_PREFIX}{take}_"
    names = set(record["keys"]) if record else set()
    # Keys carrying this take's prefix are ours even if the record was lost.
    names |= {kb.name for kb in key.key_blocks if kb.name.startswith(prefix)}
    names.discard(key.reference_key.name)
    removed = False
    paths = {_key_path(n) for n in names}
    action = bpy.data.actions.get(record["action"]) if record and record.get("action") else None
    current, _ = compat.assigned(key)
    for act in {a for a in (action, current) if a is not None and a.library is None}:
        for fcs in _all_fcurve_collections(act):
            for fc in [fc for fc in fcs if fc.data_path in paths]:
                fcs.remove(fc)
                removed = True
    if action is not None and record.get("own_action") and action.library is None:
        if not _has_fcurves(action):
            if current == action:
                key.animation_data.action = None
            if action.users == 0 or (action.users == 1 and action.use_fake_user):
                bpy.data.actions.remove(action)
        else:
            # The user's animation lives here now: it must survive even if a later bake assigns
            # another Action (an Action with no users is not saved).
            action.use_fake_user = True
        removed = True
    for name in names:
        kb = key.key_blocks.get(name)
        if kb is not None:
            obj.shape_key_remove(kb)
            removed = True
    if TAG_PROP in key.keys() or record:
        _save_takes(obj.data.shape_keys, data)
    return removed


def _has_fcurves(action) -> bool:
    return any(len(fcs) for fcs in _all_fcurve_collections(action))


def remove_all(obj) -> None:
    """Every take; and the Basis too when a bake made it and nothing else uses shape keys."""
    records = takes(obj)
    for take in list(records):
        remove_take(obj, take)
    key = obj.data.shape_keys
    if key is not None and len(key.key_blocks) == 1 and any(r.get("created_basis") for r in records.values()):
        obj.shape_key_clear()


def _all_fcurve_collections(action):
    if not compat.is_layered_api() or not hasattr(action, "layers"):
        return [action.fcurves]
    out = []
    for layer in action.layers:
        for strip in layer.strips:
            for bag in getattr(strip, "channelbags", []):
                out.append(bag.fcurves)
    return out


# --- writing ----------------------------------------------------------------------------------

def _prepare_keys(obj):
    """Make sure a Basis exists; returns (key datablock, created_basis)."""
    if obj.data.shape_keys is None:
        obj.shape_key_add(name="Basis", from_mix=False)
        return obj.data.shape_keys, True
    return obj.data.shape_keys, False


def _target_action(key, take, own_action: bool):
    """(action, slot, fcurves, own): a new Action for this take, or the user's assigned one."""
    current, slot = compat.assigned(key)
    if current is not None and not own_action:
        slot = compat.ensure_slot_for(current, key)
        if slot is not None and key.animation_data.action_slot is None:
            key.animation_data.action_slot = slot
        return current, slot, compat.fcurves(current, slot), False
    action, slot = compat.new_action_for(key, f"{KEY_PREFIX}{take}_{key.user.name}"[:63])
    return action, slot, compat.fcurves(action, slot), True


def _add_shape(obj, name: str, basis: np.ndarray, delta: np.ndarray, slider=(0.0, 1.0)):
    kb = obj.shape_key_add(name=name, from_mix=False)
    kb.relative_key = obj.data.shape_keys.reference_key
    kb.slider_min, kb.slider_max = slider
    _points(kb).foreach_set("co", (basis + delta).astype(np.float32).ravel())
    kb.value = 0.0
    return kb


def _add_curve(fcs, name: str, frames: np.ndarray, values: np.ndarray, interpolation: int):
    fc = fcs.new(_key_path(name), index=0)
    points = fc.keyframe_points
    points.add(len(frames))
    co = np.empty((len(frames), 2), np.float32)
    co[:, 0], co[:, 1] = frames, values
    points.foreach_set("co", co.ravel())
    points.foreach_set("interpolation", np.full(len(frames), interpolation, np.int32))
    fc.update()
    return fc


def write_bake(obj, *, start_frame: int, displacements=None, compact_basis=None, upper_face=None,
               take: str = DEFAULT_TAKE, own_action=None, info=None) -> dict:
    """Replace ``take``'s previous bake on ``obj`` with a new one; returns the take record.

    Exactly one of ``displacements`` ((T, N, 3), per-frame mode) and ``compact_basis``
    (core.compact.CompactBasis) is given. ``upper_face`` (core.upper_face.UpperFaceTrack): the
    blinks, brows and cheeks as their own named keys (``S2F_<take>_upper_<name>``) with one
    weight curve each, so they can be reworked or muted without touching the lips.
    ``own_action`` True puts the keys in a new Action even when the user has one assigned
    (batch takes); default: reuse the user's Action.
    """
    take = take_name(take)
    basis_was_ours = takes(obj).get(take, {}).get("created_basis", False)
    remove_take(obj, take)
    key, created_basis = _prepare_keys(obj)
    created_basis = created_basis or basis_was_ours
    basis = np.empty(len(obj.data.vertices) * 3, np.float32)
    _points(key.reference_key).foreach_get("co", basis)
    basis = basis.reshape(-1, 3)
    action, slot, fcs, own = _target_action(key, take, bool(own_action))
    names = []
    try:
        if displacements is not None:
            frames_total = len(displacements)
            for i, delta in enumerate(displacements):
                name = f"{KEY_PREFIX}{take}_{i:05d}"
                _add_shape(obj, name, basis, delta)
                f = start_frame + i
                # 0 before, 1 on its own frame, 0 after; CONSTANT so sub-frames never mix frames.
                _add_curve(fcs, name, np.array([f - 1, f, f + 1]), np.array([0.0, 1.0, 0.0]),
                           compat.INTERPOLATION_CONSTANT)
                names.append(name)
            mode = "PER_FRAME"
        else:
            frames_total = len(compact_basis.weights)
            frames = np.arange(start_frame - 1, start_frame + frames_total + 1)
            for k in range(compact_basis.num_components):
                name = f"{KEY_PREFIX}{take}_pc{k:02d}"
                _add_shape(obj, name, basis, compact_basis.basis[k], slider=(-1.0, 1.0))
                values = np.concatenate([[0.0], compact_basis.weights[:, k], [0.0]])
                # LINEAR: exact on whole frames, smooth in between (motion blur, retiming).
                _add_curve(fcs, name, frames, values, compat.INTERPOLATION_LINEAR)
                names.append(name)
            mode = "COMPACT"
        upper_names = []
        if upper_face is not None:
            frames = np.arange(start_frame - 1, start_frame + frames_total + 1)
            for k, layer_name in enumerate(upper_face.names):
                name = f"{KEY_PREFIX}{take}_upper_{layer_name}"
                _add_shape(obj, name, basis, upper_face.keys[k])
                values = np.concatenate([[0.0], upper_face.weights[:, k], [0.0]])
                # as the lips: per-frame mode shows each frame exactly on sub-frames too
                _add_curve(fcs, name, frames, values, compat.INTERPOLATION_CONSTANT if mode == "PER_FRAME"
                           else compat.INTERPOLATION_LINEAR)
                names.append(name)
                upper_names.append(name)
    except Exception:
        # Leave nothing half-written behind.
        for name in names:
            kb = key.key_blocks.get(name)
            if kb is not None:
                obj.shape_key_remove(kb)
        if own:
            bpy.data.actions.remove(action)
        raise
    if own:
        compat.assign_action(key, action, slot)
    record = {
        "keys": names,
        "upper_face_keys": upper_names,
        "action": action.name,
        "own_action": own,
        "created_basis": created_basis,
        "mode": mode,
        "start_frame": int(start_frame),
        "frames": int(frames_total),
        **(info or {}),
    }
    data = takes(obj)
    data[take] = record
    _save_takes(key, data)
    return record


def cover_frame_range(scene, start_frame: int, frames: int) -> None:
    """Grow (never shrink) the scene's frame range so the whole clip plays."""
    end = start_frame + frames - 1
    if scene.frame_start > start_frame:
        scene.frame_start = max(0, start_frame)
    if scene.frame_end < end:
        scene.frame_end = end
