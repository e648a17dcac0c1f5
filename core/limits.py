"""The ranges a bake accepts, checked before any heavy work, each with a message that says why.

Frame rate: 1-240 fps covers every video and game rate; beyond it a clip becomes millions of
frames (a typo like --fps 30000 would run for hours). Duration: one hour of audio per bake
(longer recordings are split into lines anyway; the bound keeps time and memory predictable).
Intensity: 0-10 (10x the predicted motion already tears a face apart).
"""

from __future__ import annotations

import math

from .errors import AudioError, SettingsError

MIN_FPS, MAX_FPS = 1.0, 240.0
MAX_SECONDS = 3600.0
MAX_INTENSITY = 10.0
MIN_SAMPLE_RATE = 4000      # below the telephone band: not a speech recording (or a broken header)


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{what} must be a number, got {value!r}.") from None
    value = float(value)
    if not math.isfinite(value):
        raise SettingsError(f"{what} must be a finite number, got {value}.")
    return value


def check_fps(fps) -> float:
    fps = _number(fps, "Frame rate")
    if not MIN_FPS <= fps <= MAX_FPS:
        raise SettingsError(f"Frame rate must be between {MIN_FPS:g} and {MAX_FPS:g} fps, got {fps:g}.")
    return fps


def check_intensity(intensity) -> float:
    intensity = _number(intensity, "Intensity")
    if not 0.0 <= intensity <= MAX_INTENSITY:
        raise SettingsError(f"Intensity must be between 0 and {MAX_INTENSITY:g}, got {intensity:g}.")
    return intensity


def check_tolerance_mm(tolerance_mm) -> float:
    tolerance_mm = _number(tolerance_mm, "Max error (--tolerance-mm)")
    if not tolerance_mm > 0:
        raise SettingsError(f"Max error (--tolerance-mm) must be greater than 0 mm, got {tolerance_mm:g}.")
    return tolerance_mm


def check_audio(num_samples: int, rate: float, source: str = "the audio") -> float:
    """Duration in seconds of ``num_samples`` at ``rate``; AudioError if unusable or too long."""
    if not rate >= MIN_SAMPLE_RATE:
        raise AudioError(f"{source} says its sample rate is {rate:g} Hz: a speech recording has at least "
                         f"{MIN_SAMPLE_RATE} Hz (is the file header damaged?).")
    seconds = num_samples / float(rate)
    if seconds > MAX_SECONDS:
        raise AudioError(f"{source} is {seconds / 60:.1f} minutes long; one bake takes at most "
                         f"{MAX_SECONDS / 60:.0f} minutes of audio: split it into shorter clips.")
    return seconds
