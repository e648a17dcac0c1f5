"""Panel and operators for heads of any topology (the work is in any_head.py and core).

    Fit FLAME to Head        registers the template to the active mesh (automatic landmarks, or
                             the landmark empties when they exist)
    Add Landmark Empties     guided placement when automatic fitting fails: one empty per named
                             point at the 3D cursor, to be moved onto the face
    Bake Any Head            bakes the scene's audio settings onto the registered mesh; other
                             selected objects (lower teeth, tongue) follow the jaw
"""

from __future__ import annotations

import bpy
from mathutils import Vector

from . import any_head
from .engine import errors

LANDMARK_PREFIX = "S2F_lmk_"
GUIDED = ("nose_tip", "chin", "eye_outer_left", "eye_outer_right", "mouth_corner_left", "mouth_corner_right")


def landmark_empties(scene) -> dict:
    return {o.name[len(LANDMARK_PREFIX):]: o for o in scene.objects
            if o.type == "EMPTY" and o.name.startswith(LANDMARK_PREFIX)
            and o.name[len(LANDMARK_PREFIX):] in any_head.registration.USER_LANDMARKS}


class SPEECHTOFACE_OT_fit_any_head(bpy.types.Operator):
    bl_idname = "speech_to_face.fit_any_head"
    bl_label = "Fit FLAME to Head"
    bl_description = ("Fit the FLAME template to the active head mesh (any topology) and store the "
                      "correspondence on it; uses the landmark empties if you placed them")
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and obj.type == "MESH" and obj.mode == "OBJECT"

    def execute(self, context):
        obj = context.active_object
        empties = landmark_empties(context.scene)
        landmarks = None
        if empties:
            to_local = obj.matrix_world.inverted()
            landmarks = {name: tuple(to_local @ e.matrix_world.translation) for name, e in empties.items()}
        context.window_manager.progress_begin(0, 100) if context.window else None
        try:
            reg = any_head.register(obj, landmarks=landmarks)
        except errors.SpeechToFaceError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        finally:
            context.window_manager.progress_end() if context.window else None
        self.report({"INFO"}, reg.summary())
        return {"FINISHED"}


class SPEECHTOFACE_OT_add_landmarks(bpy.types.Operator):
    bl_idname = "speech_to_face.add_landmark_empties"
    bl_label = "Add Landmark Empties"
    bl_description = ("Add one empty per facial landmark at the 3D cursor; move each onto the face "
                      "(the character's own left and right), then Fit FLAME to Head")
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        existing = landmark_empties(context.scene)
        base = context.scene.cursor.location.copy()
        for i, name in enumerate(GUIDED):
            if name in existing:
                continue
            empty = bpy.data.objects.new(LANDMARK_PREFIX + name, None)
            empty.empty_display_type = "SPHERE"
            empty.empty_display_size = 0.005
            empty.location = base + Vector((0.0, 0.0, 0.01 * i))
            context.scene.collection.objects.link(empty)
        self.report({"INFO"}, f"Move the {len(GUIDED)} '{LANDMARK_PREFIX}*' empties onto the face, then fit again.")
        return {"FINISHED"}


class SPEECHTOFACE_OT_bake_any_head(bpy.types.Operator):
    bl_idname = "speech_to_face.bake_any_head"
    bl_label = "Bake Any Head"
    bl_description = ("Bake speech onto the registered head (motion transferred from the fitted FLAME "
                      "template); other selected objects follow the jaw")
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return any_head.is_registered(context.active_object)

    def execute(self, context):
        props = context.scene.speech_to_face
        obj = context.active_object
        audio = bpy.path.abspath(props.audio_file) if props.audio_source == "FILE" and props.audio_file else ""
        parts = [o for o in context.selected_objects if o != obj]
        try:
            settings = props.to_settings().__dict__
            result = any_head.bake(obj, audio, scene=context.scene, start_frame=props.audio_frame if audio else None,
                                   jaw_parts=parts, **settings)
        except errors.SpeechToFaceError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        for w in result.warnings:
            self.report({"WARNING"}, w)
        props.last_report = result.summary()
        self.report({"INFO"} if result.trained else {"WARNING"}, result.summary())
        return {"FINISHED"}


class SPEECHTOFACE_PT_any_head(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Speech to Face"
    bl_label = "Any Head (other topology)"
    bl_parent_id = "SPEECHTOFACE_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        obj = context.active_object
        if any_head.is_registered(obj):
            import json
            rec = json.loads(obj[any_head.PROP])
            layout.label(text=f"Fitted: {rec['fit_face_mm']:.2f} mm ({rec['landmarks_from']} landmarks)",
                         icon="CHECKMARK")
        else:
            layout.label(text="Not fitted yet", icon="INFO")
        layout.operator(SPEECHTOFACE_OT_fit_any_head.bl_idname, icon="MOD_MESHDEFORM")
        layout.operator(SPEECHTOFACE_OT_add_landmarks.bl_idname, icon="EMPTY_AXIS")
        layout.operator(SPEECHTOFACE_OT_bake_any_head.bl_idname, icon="PLAY_SOUND")


classes = (SPEECHTOFACE_OT_fit_any_head, SPEECHTOFACE_OT_add_landmarks, SPEECHTOFACE_OT_bake_any_head,
           SPEECHTOFACE_PT_any_head)

register, unregister = bpy.utils.register_classes_factory(classes)
