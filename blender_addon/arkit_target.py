"""The ARKit target: key a character's own ARKit-named shape keys with solved weights. No maths
here (core.arkit solves the weights and matches the names).

Only the shape keys that stand for one of the 52 ARKit shapes are keyed; nothing else on the
mesh changes. The curves go into a new Action on the shape keys, named ``S2F_ARKit_<object>``;
a re-bake replaces exactly that Action. An Action the user had assigned is kept (it gets a fake
user so saving never drops it) and is recorded, so it can be put back.
"""

from __future__ import annotations

import importlib
import json

import bpy
import numpy as np

from . import bake as flame_bake, compat
from .engine import core, errors

arkit = importlib.import_module(core.__name__ + ".arkit")

TAG_PROP = "speech_to_face_arkit"
ACTION_PREFIX = "S2F_ARKit_"


def shape_key_names(obj) -> list:
    key = obj.data.shape_keys if obj is not None and obj.type == "MESH" else None
    if key is None:
        return []
    return [kb.name for kb in key.key_blocks if kb != key.reference_key]


def find_keys(obj) -> dict:
    """{ARKit name: shape key name} on ``obj`` (empty when it has none)."""
    return arkit.match_shape_keys(shape_key_names(obj))


def target_problem(obj) -> str:
    """Why ``obj`` cannot take ARKit weights (empty string when it can)."""
    problem = flame_bake.editable_mesh_problem(obj, "a mesh with ARKit-named shape keys (jawOpen, mouthClose, ...)")
    if problem:
        return problem
    if obj.data.shape_keys is None:
        return f"'{obj.name}' has no shape keys: the ARKit target needs ARKit-named shape keys (jawOpen, ...)."
    if not find_keys(obj):
        return (f"'{obj.name}' has {len(shape_key_names(obj))} shape keys but none has an ARKit name "
                "(jawOpen, mouthClose, eyeBlinkLeft, ...; prefixes and _L/_R variants are accepted).")
    return ""


def arkit_objects(objects) -> list:
    """The meshes among ``objects`` that carry at least one ARKit-named shape key."""
    return [o for o in objects if o is not None and o.type == "MESH" and not target_problem(o)]


def remove_bake(obj) -> bool:
    """Remove this target's previous bake on ``obj`` (its Action) and give back the user's Action."""
    key = obj.data.shape_keys if obj.type == "MESH" else None
    if key is None or TAG_PROP not in key:
        return False
    record = json.loads(key[TAG_PROP])
    ours = bpy.data.actions.get(record.get("action", ""))
    current, _ = compat.assigned(key)
    if ours is not None:
        if current == ours:
            key.animation_data.action = None
        bpy.data.actions.remove(ours)
    previous = bpy.data.actions.get(record.get("previous_action") or "")
    if previous is not None and key.animation_data is not None and key.animation_data.action is None:
        compat.assign_action(key, previous, compat.ensure_slot_for(previous, key))
    del key[TAG_PROP]
    return True


def write_weights(obj, weights: np.ndarray, *, start_frame: int) -> dict:
    """Key the ARKit-named shape keys of ``obj`` with (T, 52) weights from ``start_frame`` on.

    Returns the record: which of the 52 were found (and under which key name), which were not,
    the Action's name and the frame range."""
    problem = target_problem(obj)
    if problem:
        raise errors.SpeechToFaceError(problem)
    w = np.asarray(weights, np.float32)
    if w.ndim != 2 or w.shape[1] != arkit.COUNT or len(w) == 0:
        raise errors.SpeechToFaceError(f"expected ARKit weights of shape (frames, {arkit.COUNT}), got {w.shape}")
    remove_bake(obj)
    found = find_keys(obj)
    key = obj.data.shape_keys
    previous, _ = compat.assigned(key)
    if previous is not None:
        previous.use_fake_user = True          # unassigning must never lose the user's Action
    action, slot = compat.new_action_for(key, f"{ACTION_PREFIX}{obj.name}"[:63])
    try:
        fcs = compat.fcurves(action, slot)
        frames = np.arange(start_frame - 1, start_frame + len(w) + 1, dtype=np.float32)
        for name, key_name in found.items():
            values = np.concatenate([[0.0], w[:, arkit.NAMES.index(name)], [0.0]]).astype(np.float32)
            fc = fcs.new(f'key_blocks["{bpy.utils.escape_identifier(key_name)}"].value', index=0)
            fc.keyframe_points.add(len(frames))
            co = np.empty((len(frames), 2), np.float32)
            co[:, 0], co[:, 1] = frames, values
            fc.keyframe_points.foreach_set("co", co.ravel())
            fc.keyframe_points.foreach_set("interpolation",
                                           np.full(len(frames), compat.INTERPOLATION_LINEAR, np.int32))
            fc.update()
    except Exception:
        bpy.data.actions.remove(action)
        raise
    compat.assign_action(key, action, slot)
    record = {"action": action.name, "previous_action": previous.name if previous is not None else None,
              "start_frame": int(start_frame), "frames": int(len(w)),
              "found": found, "missing": [n for n in arkit.NAMES if n not in found]}
    key[TAG_PROP] = json.dumps(record)
    return record


def report(record: dict) -> str:
    """One line for the user: how many of the 52 were keyed, and which are missing."""
    n = len(record["found"])
    missing = record["missing"]
    tail = "" if not missing else f"; missing: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}"
    return f"keyed {n} of {arkit.COUNT} ARKit shapes{tail}"


def bake(objects, audio, *, animator, fps: float, start_frame: int = 1, sample_rate=None,
         csv_path: str = "", json_path: str = "", expression=None) -> dict:
    """Speech -> ARKit weights (core) -> keys on every mesh among ``objects`` that has ARKit-named
    shape keys, plus the optional Live Link Face CSV and JSON files. Raises one clear error
    (and changes nothing) when none of the objects can take the weights."""
    targets = arkit_objects(objects)
    if not targets and not (csv_path or json_path):
        problems = [target_problem(o) for o in objects] or ["No objects selected."]
        raise errors.SpeechToFaceError(problems[0] if len(problems) == 1 else
                                       "None of the selected objects has ARKit-named shape keys: "
                                       + " ".join(problems))
    weights = arkit.weights_from_audio(animator, audio, fps, sample_rate=sample_rate, expression=expression)
    # the files first: a path that cannot be written must not leave a half-done scene
    if csv_path:
        arkit.write_live_link_csv(csv_path, weights, fps)
    if json_path:
        arkit.write_json(json_path, weights, fps)
    records = {o.name: write_weights(o, weights, start_frame=start_frame) for o in targets}
    return {"weights": weights, "objects": records, "csv": csv_path, "json": json_path}


def add_basis_keys(obj, prefix: str = "") -> list:
    """Give a FLAME-topology mesh the project's 52 ARKit shapes as shape keys named
    ``prefix + ARKit name`` (tongueOut included, as an empty key): the head becomes an
    ARKit-rigged character for this target and for other tools (glTF export keeps the keys).
    Existing keys with those names are left alone and reported as skipped."""
    neutral = flame_bake.check_target(obj)           # the FLAME checks, with their clear errors
    fields = arkit.fields_for_head(neutral)
    if obj.data.shape_keys is None:
        obj.shape_key_add(name="Basis", from_mix=False)
    key = obj.data.shape_keys
    base = np.empty(len(obj.data.vertices) * 3, np.float32)
    key.reference_key.data.foreach_get("co", base)
    base = base.reshape(-1, 3)
    added = []
    for name, field in zip(arkit.NAMES, fields):
        if key.key_blocks.get(prefix + name) is not None:
            continue
        kb = obj.shape_key_add(name=prefix + name, from_mix=False)
        kb.relative_key = key.reference_key
        kb.data.foreach_set("co", (base + field).astype(np.float32).ravel())
        kb.value = 0.0
        added.append(kb.name)
    return added
