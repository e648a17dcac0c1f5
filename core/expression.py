"""Emotion and speaking style: the control codes S2L is conditioned on.

After Speech4Mesh (an emotion embedding controls the speaking-unrelated factors of the face)
and "composite and regional facial movements" (speech-independent factors modulate the
speech-driven motion over time), every frame carries a small code next to the speech features:

    code = [happy, sad, angry, surprised, style]       (CODE_DIM = 5)

* one strength in [0, 1] per non-neutral emotion; neutral is all zeros, so a network
  conditioned on the code with neutral input behaves as an unconditioned one would;
* ``style`` in [-1, 1]: -1 relaxed (small, lazy articulation, a mumble), 0 the everyday
  default, +1 precise and energetic (large, crisp articulation).

The code may change over time: ``Expression`` holds keyframes (time, emotion, strength, style)
and ``codes`` turns them into per-frame codes with a short linear blend between keys, so an
emotion can build up or change in the middle of a line. The articulation teacher draws the same
codes for every training utterance, which is what lets S2L learn what each code does to the
articulation itself (a smile spreading the lips while speaking, sadness damping the jaw).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised")
CODE_NAMES = ("happy", "sad", "angry", "surprised", "style")
CODE_DIM = len(CODE_NAMES)
BLEND_SECONDS = 0.4      # how long one key takes to turn into the next


@dataclass(frozen=True)
class Key:
    time: float              # seconds from the clip's start
    emotion: str = "neutral"
    strength: float = 1.0    # 0-1; ignored for neutral
    style: float = 0.0       # -1 relaxed .. 0 default .. +1 precise

    def code(self) -> np.ndarray:
        c = np.zeros(CODE_DIM, np.float32)
        if self.emotion != "neutral":
            c[CODE_NAMES.index(self.emotion)] = self.strength
        c[-1] = self.style
        return c


@dataclass(frozen=True)
class Expression:
    keys: tuple = field(default_factory=lambda: (Key(0.0),))

    @staticmethod
    def constant(emotion: str = "neutral", strength: float = 1.0, style: float = 0.0) -> "Expression":
        return Expression((validate_key(Key(0.0, emotion, strength, style)),))

    @staticmethod
    def from_rows(rows) -> "Expression":
        """From stored [time, emotion, strength, style] rows (a corpus utterance's metadata)."""
        return Expression(tuple(Key(*row) for row in rows))

    @property
    def is_neutral(self) -> bool:
        return all(k.emotion == "neutral" and k.style == 0.0 for k in self.keys)

    def codes(self, num_frames: int, fps: float) -> np.ndarray:
        """(num_frames, CODE_DIM) float32: each key holds from its time on, blended into the next."""
        t = np.arange(num_frames) / float(fps)
        keys = sorted(self.keys, key=lambda k: k.time)
        out = np.tile(keys[0].code(), (num_frames, 1))
        for key in keys[1:]:
            ramp = np.clip((t - key.time) / BLEND_SECONDS + 0.5, 0.0, 1.0)[:, None]
            out = out * (1 - ramp) + key.code()[None] * ramp
        return out.astype(np.float32)


def validate_key(key: Key) -> Key:
    if key.emotion not in EMOTIONS:
        raise ValueError(f"Unknown emotion '{key.emotion}': choose one of {', '.join(EMOTIONS)}.")
    for name, value, lo, hi in (("strength", key.strength, 0.0, 1.0), ("style", key.style, -1.0, 1.0),
                                ("time", key.time, 0.0, math.inf)):
        if not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise ValueError(f"Emotion {name} must be a finite number, got {value!r}.")
        if not lo <= value <= hi:
            raise ValueError(f"Emotion {name} must be between {lo:g} and {hi:g}, got {value:g}.")
    return key


def parse(text: str, style: float = 0.0) -> Expression:
    """'happy', 'sad:0.6' or keyframes '0:neutral, 2.5:happy:0.8, 6:angry' (seconds:emotion[:strength]).

    ``style`` applies to every key (the speaking style is one setting per bake).
    """
    text = (text or "neutral").strip()
    keys = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        fields = [f.strip() for f in part.split(":")]
        time = 0.0
        if fields and _is_number(fields[0]):
            time = float(fields.pop(0))
        if not fields or not fields[0]:
            raise ValueError(f"'{part}': expected [seconds:]emotion[:strength], e.g. '2.5:happy:0.8'.")
        emotion = fields[0].lower()
        strength = float(fields[1]) if len(fields) > 1 and _is_number(fields[1]) else 1.0
        if len(fields) > 2 or (len(fields) > 1 and not _is_number(fields[1])):
            raise ValueError(f"'{part}': expected [seconds:]emotion[:strength], e.g. '2.5:happy:0.8'.")
        keys.append(validate_key(Key(time, emotion, strength, style)))
    keys.sort(key=lambda k: k.time)
    if keys[0].time > 0:
        keys.insert(0, Key(0.0, "neutral", 1.0, style))
    return Expression(tuple(keys))


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False
