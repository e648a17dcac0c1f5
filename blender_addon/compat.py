"""The few places where Blender 4.2 LTS and Blender 4.4+/5.x APIs differ, in one file.

* Sequencer: 5.0 renamed ``sequence_editor.sequences(_all)`` to ``strips(_all)``.
* Actions: 4.4 introduced layered Actions (slots, layers, strips, channel bags) and 5.0
  removed the legacy ``Action.fcurves``; on 4.2/4.3 only ``Action.fcurves`` exists.
* Video output: 5.0 moved FFmpeg behind ``image_settings.media_type = 'VIDEO'``.
"""

from __future__ import annotations

import bpy

# KeyframeInterpolation enum values as foreach_set expects them (RNA enum order).
INTERPOLATION_CONSTANT = 0
INTERPOLATION_LINEAR = 1


def _strips_of(container, all_levels: bool):
    if hasattr(container, "strips"):
        return container.strips_all if all_levels and hasattr(container, "strips_all") else container.strips
    return container.sequences_all if all_levels else container.sequences


def all_strips(scene):
    """Every strip of the scene's sequencer (including inside meta strips); empty when there is none."""
    se = scene.sequence_editor
    return list(_strips_of(se, True)) if se is not None else []


def sound_strips(scene):
    return [s for s in all_strips(scene) if s.type == "SOUND"]


def new_sound_strip(scene, name: str, filepath: str, channel: int, frame_start: int):
    se = scene.sequence_editor or scene.sequence_editor_create()
    return _strips_of(se, False).new_sound(name, filepath, channel, frame_start)


def remove_strip(scene, strip) -> None:
    se = scene.sequence_editor
    if se is not None:
        _strips_of(se, False).remove(strip)


# --- Actions ---------------------------------------------------------------------------------

def is_layered_api() -> bool:
    """Slotted/layered Actions arrived in 4.4 (RNA properties are not class attributes)."""
    return bpy.app.version >= (4, 4, 0)


def new_action_for(id_data, name: str):
    """A new Action holding F-curves for ``id_data`` (a shape-key datablock), and its slot.

    Returns (action, slot); slot is None on the legacy API.
    """
    action = bpy.data.actions.new(name)
    if not is_layered_api():
        action.id_root = "KEY"
        return action, None
    slot = action.slots.new(id_type=id_data.id_type, name=id_data.name)
    layer = action.layers.new("Speech to Face")
    layer.strips.new(type="KEYFRAME")
    return action, slot


def assign_action(id_data, action, slot) -> None:
    ad = id_data.animation_data or id_data.animation_data_create()
    ad.action = action
    if slot is not None and ad.action_slot != slot:
        ad.action_slot = slot


def assigned(id_data):
    """(action, slot) currently driving ``id_data`` (either may be None)."""
    ad = id_data.animation_data
    if ad is None or ad.action is None:
        return None, None
    return ad.action, (getattr(ad, "action_slot", None) if is_layered_api() else None)


def fcurves(action, slot, ensure: bool = True):
    """The F-curve collection of ``slot`` in ``action`` (legacy: ``action.fcurves``)."""
    if not is_layered_api() or not hasattr(action, "layers"):
        return action.fcurves
    if slot is None:
        if not ensure:
            return None
        slot = action.slots.new(id_type="KEY", name="Key")
    if not action.layers:
        if not ensure:
            return None
        action.layers.new("Layer")
    layer = action.layers[0]
    if not layer.strips:
        if not ensure:
            return None
        layer.strips.new(type="KEYFRAME")
    strip = layer.strips[0]
    bag = strip.channelbag(slot, ensure=ensure)
    return bag.fcurves if bag is not None else None


def ensure_slot_for(action, id_data):
    """On the layered API an assigned action may have no slot yet for this datablock: make one."""
    if not is_layered_api():
        return None
    ad = id_data.animation_data
    if ad is not None and ad.action == action and ad.action_slot is not None:
        return ad.action_slot
    for s in action.slots:
        if s.target_id_type == id_data.id_type:
            return s
    return action.slots.new(id_type=id_data.id_type, name=id_data.name)


# --- Rendering ---------------------------------------------------------------------------------

def set_ffmpeg_output(scene) -> None:
    s = scene.render.image_settings
    if hasattr(s, "media_type"):
        s.media_type = "VIDEO"
    s.file_format = "FFMPEG"
