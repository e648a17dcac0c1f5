"""The panel's settings, stored on the scene (saved with the .blend, part of undo)."""

from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty,
                       StringProperty)

from . import engine
from .job import BakeSettings


def _backend_items(self, context):
    items = [("numpy", "NumPy", "Pure NumPy inference: runs in stock Blender on any machine")]
    if engine.torch_available():
        items.append(("torch", "PyTorch", "PyTorch inference (CPU or CUDA)"))
    return items


class SpeechToFaceSettings(bpy.types.PropertyGroup):
    audio_source: EnumProperty(
        name="Audio", default="STRIP",
        items=[("STRIP", "Sound Strip", "Use the active sound strip of the sequencer"),
               ("FILE", "File", "Add an audio file as a new sound strip at the chosen frame")])
    audio_file: StringProperty(name="Audio File", subtype="FILE_PATH",
                               description="WAV, FLAC, OGG, MP3... anything Blender can play")
    audio_frame: IntProperty(name="At Frame", default=1,
                             description="Frame where the new sound strip (and the animation) starts")
    mode: EnumProperty(
        name="Bake", default="PER_FRAME",
        items=[("PER_FRAME", "Per-Frame Shape Keys", "One shape key per frame: exact, grows with the clip"),
               ("COMPACT", "Compact", "A small PCA basis of shape keys with per-frame weight curves")])
    tolerance_mm: FloatProperty(name="Max Error (mm)", default=0.1, min=0.001, max=5.0, precision=3,
                                description="Compact mode: largest vertex error allowed, in mm on a "
                                            "FLAME-sized head (scaled to your head's size)")
    intensity: FloatProperty(name="Intensity", default=1.0, min=0.0, soft_max=2.0, max=5.0,
                             description="Scales the predicted motion")
    encoder: EnumProperty(
        name="Speech Encoder", default="hama",
        items=[("hama", "hama phonemes", "hama's phoneme recogniser (falls back to mel where it cannot run)"),
               ("mel", "Mel spectrogram", "Log-mel features: runs everywhere")])
    backend: EnumProperty(name="Back End", items=_backend_items)
    device: EnumProperty(name="Device", default="cpu",
                         items=[("cpu", "CPU", "Run on the CPU"), ("cuda", "CUDA", "Run on an NVIDIA GPU")])
    weights_dir: StringProperty(name="Weights", subtype="DIR_PATH",
                                description="Folder with trained weights (empty: the bundled ones)")
    allow_random: BoolProperty(name="Random Weights If None Installed", default=True,
                               description="With no trained weights installed at all, bake with "
                                           "random-initialised networks (for testing the set-up only)")
    emotion: EnumProperty(
        name="Emotion", default="neutral",
        items=[("neutral", "Neutral", "No emotion: the everyday articulation"),
               ("happy", "Happy", "A smile that spreads the lips while speaking, cheeks and lids up"),
               ("sad", "Sad", "Corners down, inner brows up, a damped jaw"),
               ("angry", "Angry", "Brows down, pressed and raised lips, sharper articulation"),
               ("surprised", "Surprised", "Brows up, eyes wide, a more open jaw")])
    emotion_strength: FloatProperty(name="Strength", default=1.0, min=0.0, max=1.0,
                                    description="How strongly the emotion shows")
    emotion_keys: StringProperty(
        name="Emotion Keys", default="",
        description="Optional: emotion over time as 'seconds:emotion[:strength]', e.g. "
                    "'0:neutral, 2.5:happy:0.8, 6:sad' (overrides Emotion and Strength)")
    style: FloatProperty(name="Speaking Style", default=0.0, min=-1.0, max=1.0,
                         description="-1 relaxed (a mumble), 0 everyday, +1 precise and energetic")
    jaw: FloatProperty(name="Jaw", default=1.0, min=0.0, max=3.0, description="Jaw intensity")
    lips: FloatProperty(name="Lips", default=1.0, min=0.0, max=3.0, description="Lip intensity")
    upper_face: FloatProperty(name="Upper Face", default=1.0, min=0.0, max=3.0,
                              description="Brows and lids: the emotion's and the upper-face layer's")
    upper_face_layer: BoolProperty(name="Blinks and Brows", default=True,
                                   description="Blinks, brows on pitch accents and cheeks, baked as their own "
                                               "S2F_<take>_upper_* shape keys you can rework or mute")
    seed: IntProperty(name="Seed", default=0, min=0, description="The upper-face layer's random choices")
    last_report: StringProperty(name="Last Bake", default="")

    def to_settings(self) -> BakeSettings:
        return BakeSettings(
            mode=self.mode, intensity=self.intensity, encoder=self.encoder,
            backend=self.backend or "numpy", device=self.device if self.backend == "torch" else "cpu",
            weights_dir=bpy.path.abspath(self.weights_dir) if self.weights_dir else "",
            allow_random=self.allow_random, tolerance_mm=self.tolerance_mm,
            emotion=self.emotion_keys.strip() or (
                self.emotion if self.emotion == "neutral" else f"{self.emotion}:{self.emotion_strength:.3g}"),
            style=self.style, jaw=self.jaw, lips=self.lips, upper_face=self.upper_face,
            upper_face_layer=self.upper_face_layer, seed=self.seed)


def register():
    bpy.utils.register_class(SpeechToFaceSettings)
    bpy.types.Scene.speech_to_face = PointerProperty(type=SpeechToFaceSettings)


def unregister():
    del bpy.types.Scene.speech_to_face
    bpy.utils.unregister_class(SpeechToFaceSettings)
