"""Which audio drives the bake and where it sits on the timeline.

Audio is decoded with Blender's own ``aud`` (audaspace), so every format Blender plays works
in stock Blender without extra libraries. The clip handed to ``core`` is exactly what the
sound strip plays: from its trimmed start (``frame_final_start``) for its trimmed length.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

import bpy
import numpy as np

from . import compat
from . import engine
from .engine import errors, limits

SILENCE_PEAK = 10 ** (-60 / 20)  # below -60 dBFS everywhere: the face will simply rest


@dataclass
class AudioClip:
    samples: np.ndarray          # (n,) float32 mono
    rate: int
    start_frame: int             # first frame the sound is heard (and the animation starts)
    source: str                  # strip name or file path, for messages
    new_strip_path: str = ""     # set when the bake must add a sound strip for a file
    warnings: list = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return len(self.samples) / float(self.rate)


def scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def active_sound_strip(scene):
    """(strip, reason): the active sound strip, else the only sound strip; reason when none."""
    strips = compat.sound_strips(scene)
    if not strips:
        return None, "No sound strip in the sequencer: add one, or choose an audio file."
    se = scene.sequence_editor
    active = se.active_strip if se is not None else None
    if active is not None and active.type == "SOUND":
        return active, ""
    if len(strips) == 1:
        return strips[0], ""
    return None, f"{len(strips)} sound strips and none is active: click the one to use in the sequencer."


DECODE_CHUNK_S = 30.0


def _decode(path: str, offset: float = 0.0, duration: float | None = None):
    """(mono float32 samples, rate) of ``path``; AudioError when unreadable.

    Long sounds are decoded 30 s at a time and mixed to mono as they come, then brought to the
    speech encoders' 16 kHz with core's resampler (what core would do next anyway, bit for bit):
    30 minutes of 48 kHz stereo then never sit in memory as 700 MB of float32.
    """
    import aud
    if not os.path.isfile(path):
        raise errors.AudioError(f"Audio file not found: {path}")
    if os.path.getsize(path) == 0:
        raise errors.AudioError(f"Audio file is empty (0 bytes): {path}")
    try:
        sound = aud.Sound(path)
        rate, _channels = sound.specs  # raises aud.error for unreadable files; data() would abort
        if offset > 0 or duration is not None:
            sound = sound.limit(max(0.0, offset), offset + duration if duration is not None else 1e9)
        # Before decoding: a damaged header (1 Hz) or hours of audio would take minutes and gigabytes.
        limits.check_audio(sound.length, rate, os.path.basename(path))
        total = int(sound.length)
        step = max(1, int(DECODE_CHUNK_S * rate))
        if total <= step:
            data = _mono(np.asarray(sound.data(), np.float32))
        else:
            # Chunk edges are the same float seconds on both sides, so the chunks tile the sound exactly.
            parts = []
            for a in range(0, total, step):
                parts.append(_mono(np.asarray(sound.limit(a / rate, min(total, a + step) / rate).data(), np.float32)))
            data = np.concatenate(parts)
            del parts
    except aud.error as exc:
        raise errors.AudioError(f"Cannot read audio {os.path.basename(path)}: {exc}") from None
    rate = int(round(rate))
    if len(data) > step and rate != engine.audio.SAMPLE_RATE:
        data, rate = engine.audio.resample(data, rate, engine.audio.SAMPLE_RATE), engine.audio.SAMPLE_RATE
    return np.ascontiguousarray(data, np.float32), rate


def _mono(data: np.ndarray) -> np.ndarray:
    return data.mean(axis=1) if data.ndim == 2 else data


def _sound_path(sound) -> tuple[str, bool]:
    """A readable file for a Sound datablock (packed sounds go through a temporary file)."""
    if sound.packed_file is not None:
        fd, tmp = tempfile.mkstemp(suffix=os.path.splitext(sound.filepath)[1] or ".wav")
        with os.fdopen(fd, "wb") as fh:
            fh.write(sound.packed_file.data)
        return tmp, True
    return bpy.path.abspath(sound.filepath, library=sound.library), False


def _check_content(samples, source: str) -> list:
    if samples.size == 0:
        raise errors.AudioError(f"The audio of {source} is empty (no samples in the played range).")
    if not np.isfinite(samples).all():
        raise errors.AudioError(f"The audio of {source} contains NaN/inf samples.")
    if float(np.abs(samples).max()) < SILENCE_PEAK:
        return [f"The audio of {source} is silent (peak below -60 dBFS): the lips will stay at rest (the upper-face layer still blinks)."]
    return []


def clip_from_strip(scene, strip) -> AudioClip:
    if strip is None or strip.type != "SOUND" or strip.sound is None:
        raise errors.AudioError("No sound strip to bake from.")
    fps = scene_fps(scene)
    # The strip plays its sound from frame_offset_start (trim) plus sound_offset seconds in.
    offset = strip.frame_offset_start / fps + getattr(strip, "sound_offset", 0.0)
    duration = strip.frame_final_duration / fps
    path, temporary = _sound_path(strip.sound)
    try:
        samples, rate = _decode(path, offset, duration)
    finally:
        if temporary:
            os.unlink(path)
    warnings = _check_content(samples, f"strip '{strip.name}'")
    if strip.mute:
        warnings.append(f"Strip '{strip.name}' is muted: the bake uses it anyway.")
    if len(getattr(strip, "retiming_keys", ())) > 0:
        warnings.append(f"Strip '{strip.name}' is retimed: the bake follows the original speed.")
    return AudioClip(samples, rate, int(strip.frame_final_start), f"strip '{strip.name}'", warnings=warnings)


def clip_from_file(path: str, start_frame: int) -> AudioClip:
    path = bpy.path.abspath(path) if path else ""
    if not path:
        raise errors.AudioError("No audio: choose a sound strip or an audio file.")
    samples, rate = _decode(path)
    warnings = _check_content(samples, os.path.basename(path))
    return AudioClip(samples, rate, int(start_frame), path, new_strip_path=path, warnings=warnings)


def add_strip_for(scene, clip: AudioClip):
    """Put the file on the timeline at the clip's frame, in the first free channel there."""
    end = clip.start_frame + int(np.ceil(clip.seconds * scene_fps(scene))) + 1
    busy = {s.channel for s in compat.all_strips(scene)
            if s.frame_final_start < end and s.frame_final_end > clip.start_frame}
    channel = next(c for c in range(1, 129) if c not in busy)
    name = os.path.splitext(os.path.basename(clip.new_strip_path))[0] or "speech"
    strip = compat.new_sound_strip(scene, name, clip.new_strip_path, channel, clip.start_frame)
    scene.sequence_editor.active_strip = strip
    return strip
