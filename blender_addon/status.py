"""What the button would do right now, and why it is disabled when it is (panel + poll)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from . import audio_source, bake, engine, job
from .engine import errors

_topology_cache: dict = {}
RUNNING: dict = {}  # scene name -> BakeJob of the modal operator


@dataclass
class Plan:
    target: str = ""              # what will be animated
    audio: str = ""               # which sound, from which frame
    result: str = ""              # what the bake will create
    notes: list = field(default_factory=list)   # warnings worth showing (random weights, fallbacks)
    blocker: str = ""             # why the button is disabled ("" = enabled)


def topology_problem(obj) -> str:
    """Full FLAME check, cached per mesh state so the panel can redraw cheaply."""
    mesh = obj.data
    stamp = (mesh.session_uid, len(mesh.vertices), len(mesh.polygons), len(mesh.loops),
             mesh.shape_keys.reference_key.name if mesh.shape_keys else "")
    if stamp not in _topology_cache:
        try:
            bake.check_target(obj)
            _topology_cache[stamp] = ""
        except errors.SpeechToFaceError as exc:
            _topology_cache[stamp] = str(exc)
        if len(_topology_cache) > 64:
            _topology_cache.pop(next(iter(_topology_cache)))
    return _topology_cache[stamp]


def plan(context) -> Plan:
    p = Plan()
    scene = context.scene
    props = scene.speech_to_face
    obj = context.active_object
    if scene.name in RUNNING:
        p.blocker = "A bake is running (ESC cancels it)."
    problem = bake.target_problem(obj) or (topology_problem(obj) if obj is not None else "")
    if problem:
        p.blocker = p.blocker or problem
    else:
        p.target = f"'{obj.name}' (FLAME head, {len(obj.data.vertices)} vertices)"
    fps = audio_source.scene_fps(scene)
    frames = 0
    if props.audio_source == "FILE":
        path = bpy_abspath(props.audio_file)
        if not props.audio_file:
            p.blocker = p.blocker or "Choose an audio file."
        elif not os.path.isfile(path):
            p.blocker = p.blocker or f"Audio file not found: {path}"
        else:
            p.audio = f"{os.path.basename(path)} as a new sound strip at frame {props.audio_frame}"
    else:
        strip, reason = audio_source.active_sound_strip(scene)
        if strip is None:
            p.blocker = p.blocker or reason
        else:
            frames = strip.frame_final_duration
            p.audio = (f"strip '{strip.name}', frames {strip.frame_final_start}-{strip.frame_final_end - 1} "
                       f"({frames / fps:.2f} s)")
    if props.mode == "PER_FRAME":
        p.result = (f"{frames} shape keys (~{frames * job.PER_FRAME_BYTES / 1e6:.0f} MB), one per frame"
                    if frames else "one shape key per frame")
        if frames * job.PER_FRAME_BYTES > job.PER_FRAME_LIMIT_BYTES:
            p.blocker = p.blocker or (f"Per-frame would write about {frames * job.PER_FRAME_BYTES / 1e9:.1f} GB "
                                      f"({frames} shape keys): choose Compact.")
        elif frames > 3000:
            p.notes.append("Long clip: Compact mode keeps the file small.")
    else:
        p.result = f"a PCA basis of shape keys, max error {props.tolerance_mm:g} mm (FLAME scale)"
    p.result += f" at {fps:.3g} fps"
    if props.upper_face_layer:
        p.result += ", plus the blink and brow keys"
    if not engine.limits.MIN_FPS <= fps <= engine.limits.MAX_FPS:
        p.blocker = p.blocker or (f"Scene frame rate {fps:.3g} fps: Speech to Face bakes at "
                                  f"{engine.limits.MIN_FPS:g}-{engine.limits.MAX_FPS:g} fps.")
    encoder, note = engine.resolve_encoder(props.encoder)
    if note:
        p.notes.append(note)
    state, message = engine.weights_state(bpy_abspath(props.weights_dir), encoder)
    if state == "broken":
        p.blocker = p.blocker or message
    elif state == "absent":
        if props.allow_random:
            p.notes.append("No trained weights installed: random-initialised networks (motion is meaningless).")
        else:
            p.blocker = p.blocker or f"No trained weights: {message}."
    if props.backend == "torch" and props.device == "cuda" and not engine.cuda_available():
        p.blocker = p.blocker or "CUDA chosen but torch sees no CUDA device."
    return p


def bpy_abspath(path: str) -> str:
    import bpy
    return bpy.path.abspath(path) if path else ""
