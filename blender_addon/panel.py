"""The "Speech to Face" tab of the 3D viewport sidebar (N panel)."""

from __future__ import annotations

import bpy

from . import status


class SPEECHTOFACE_PT_main(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Speech to Face"
    bl_label = "Speech to Face"

    def draw(self, context):
        layout = self.layout
        props = context.scene.speech_to_face
        p = status.plan(context)

        col = layout.column(align=True)
        col.label(text="Target", icon="OUTLINER_OB_MESH")
        col.label(text=p.target or "no valid head selected", icon="CHECKMARK" if p.target else "ERROR")

        box = layout.box()
        box.prop(props, "audio_source", expand=True)
        if props.audio_source == "FILE":
            box.prop(props, "audio_file", text="")
            box.prop(props, "audio_frame")
        if p.audio:
            box.label(text=p.audio, icon="SOUND")
        scene = context.scene
        box.label(text=f"Frame rate: {scene.render.fps / scene.render.fps_base:.4g} fps (scene)", icon="TIME")

        col = layout.column()
        col.prop(props, "mode", text="Bake")
        if props.mode == "COMPACT":
            col.prop(props, "tolerance_mm")
        col.prop(props, "intensity", slider=True)

        face = layout.column(heading="Expression")
        face.prop(props, "emotion")
        if props.emotion != "neutral" and not props.emotion_keys.strip():
            face.prop(props, "emotion_strength", slider=True)
        face.prop(props, "emotion_keys", text="Keys")
        face.prop(props, "style", slider=True)
        regions = layout.column(heading="Regions", align=True)
        regions.prop(props, "jaw", slider=True)
        regions.prop(props, "lips", slider=True)
        regions.prop(props, "upper_face", slider=True)
        layer = layout.row(align=True)
        layer.prop(props, "upper_face_layer")
        if props.upper_face_layer:
            layer.prop(props, "seed")

        sub = layout.column(heading="Inference")
        sub.prop(props, "encoder", text="Encoder")
        sub.prop(props, "backend", text="Back End")
        if props.backend == "torch":
            sub.prop(props, "device", text="Device")
        sub.prop(props, "weights_dir", text="Weights")
        sub.prop(props, "allow_random")

        info = layout.column(align=True)
        if p.result:
            info.label(text="Will create " + p.result, icon="SHAPEKEY_DATA")
        for note in p.notes:
            info.label(text=note, icon="INFO")

        running = status.RUNNING.get(scene.name)
        if running is not None:
            layout.progress(factor=running.progress, type="BAR",
                            text=f"Baking {running.progress * 100:.0f}% - Esc to cancel")
        row = layout.row()
        row.scale_y = 1.6
        row.enabled = not p.blocker
        row.operator("speech_to_face.bake", text="Speech to Face", icon="PLAY_SOUND")
        if p.blocker:
            layout.label(text=p.blocker, icon="ERROR")
        if props.last_report:
            layout.label(text=props.last_report, icon="CHECKMARK")
        obj = context.active_object
        if obj is not None and obj.type == "MESH" and obj.data.shape_keys is not None:
            from . import bake
            if bake.takes(obj):
                layout.operator("speech_to_face.remove_bake", icon="TRASH")


classes = (SPEECHTOFACE_PT_main,)


register, unregister = bpy.utils.register_classes_factory(classes)
