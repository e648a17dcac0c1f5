"""The Speech to Face button: a modal operator with a progress bar and ESC to cancel.

Inference runs in a worker thread (job.BakeJob) that never touches bpy; the modal handler
polls it on a timer and writes the result on the main thread, so the whole bake is a single
undo step and a cancel or an error leaves the scene as it was.
"""

from __future__ import annotations

import bpy

from . import job, status
from .engine import errors

# Events that keep working while the bake runs (look around, nothing that edits).
_NAVIGATION = {"MIDDLEMOUSE", "WHEELUPMOUSE", "WHEELDOWNMOUSE", "TRACKPADPAN", "TRACKPADZOOM",
               "MOUSEMOVE", "INBETWEEN_MOUSEMOVE", "NDOF_MOTION"}


def _report_result(op, scene, result: job.BakeResult):
    for w in result.warnings:
        op.report({"WARNING"}, w)
    text = result.summary()
    scene.speech_to_face.last_report = text
    op.report({"INFO"} if result.trained else {"WARNING"}, text)


def _request(context):
    props = context.scene.speech_to_face
    audio_path = props.audio_file if props.audio_source == "FILE" else ""
    return job.prepare(context.scene, context.active_object, props.to_settings(),
                       audio_path=bpy.path.abspath(audio_path) if audio_path else "",
                       start_frame=props.audio_frame)


class SPEECHTOFACE_OT_bake(bpy.types.Operator):
    bl_idname = "speech_to_face.bake"
    bl_label = "Speech to Face"
    bl_description = "Animate the active FLAME head from speech, baked as shape keys in sync with the sound"
    bl_options = {"REGISTER", "UNDO"}

    _job = None
    _timer = None

    @classmethod
    def poll(cls, context):
        if context.scene is None or not hasattr(context.scene, "speech_to_face"):
            return False
        blocker = status.plan(context).blocker
        if blocker:
            cls.poll_message_set(blocker)
            return False
        return True

    def execute(self, context):
        """Synchronous bake (scripts, background mode, redo)."""
        try:
            request = _request(context)
            outcome = job.infer(request)
            result = job.apply(context.scene, request, outcome)
        except errors.SpeechToFaceError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        _report_result(self, context.scene, result)
        return {"FINISHED"}

    def invoke(self, context, event):
        if context.window is None:  # background mode: no events to drive a modal handler
            return self.execute(context)
        try:
            request = _request(context)
        except errors.SpeechToFaceError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self._job = job.BakeJob(request).start()
        status.RUNNING[context.scene.name] = self._job
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 100)
        self._status(context)
        return {"RUNNING_MODAL"}

    def _status(self, context):
        text = f"Speech to Face: {self._job.progress * 100:.0f}%  (Esc to cancel)"
        if context.workspace is not None:
            context.workspace.status_text_set(text)
        context.window_manager.progress_update(int(self._job.progress * 100))
        for area in context.screen.areas if context.screen else ():
            if area.type == "VIEW_3D":
                area.tag_redraw()

    def _finish(self, context):
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        status.RUNNING.pop(context.scene.name, None)
        for area in context.screen.areas if context.screen else ():
            area.tag_redraw()

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            # The worker stops at its next check; its result is dropped, nothing was written.
            self._job.cancel()
            self._finish(context)
            self.report({"WARNING"}, "Speech to Face cancelled: nothing was changed.")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"} if event.type in _NAVIGATION else {"RUNNING_MODAL"}
        self._status(context)
        if not self._job.done:
            return {"RUNNING_MODAL"}
        self._finish(context)
        j = self._job
        if j.error is not None:
            level = {"WARNING"} if isinstance(j.error, errors.Cancelled) else {"ERROR"}
            message = str(j.error) if isinstance(j.error, errors.SpeechToFaceError) else (
                f"Speech to Face failed: {type(j.error).__name__}: {j.error}")
            self.report(level, message)
            return {"CANCELLED"}
        try:
            result = job.apply(context.scene, j.request, j.outcome)
        except errors.SpeechToFaceError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        _report_result(self, context.scene, result)
        return {"FINISHED"}


class SPEECHTOFACE_OT_remove(bpy.types.Operator):
    bl_idname = "speech_to_face.remove_bake"
    bl_label = "Remove Bake"
    bl_description = "Remove the Speech to Face shape keys and animation from the active object"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        from . import bake
        obj = context.active_object
        return obj is not None and obj.type == "MESH" and bool(bake.takes(obj)) and obj.library is None

    def execute(self, context):
        from . import bake
        obj = context.active_object
        bake.remove_all(obj)
        self.report({"INFO"}, f"Removed the Speech to Face bake from '{obj.name}'.")
        return {"FINISHED"}


classes = (SPEECHTOFACE_OT_bake, SPEECHTOFACE_OT_remove)


register, unregister = bpy.utils.register_classes_factory(classes)
