"""Steady sounds that are not speech, whose teacher is the face at rest.

Every training utterance is speech, so S2L never learns what to do with a loud sound that is
not: on codec2's modem recordings (a steady 1-2 kHz multi-carrier signal) the ``mel`` network
held the mouth some 13 mm open for the whole clip, and the pause rest cannot catch it because
the signal is loud all through. Crops of these sounds, with the rest pose as target, teach
the network that a loud sound alone does not move the mouth.

Kinds (each a few seconds, at a speech-like level, -32 to -14 dBFS RMS as the corpus):
  carriers  8-40 tones, 0.3-3 kHz, phases jumping every 10-40 ms (data modems, OFDM radio)
  tones     one or two steady tones (dial, busy, DTMF, test beeps), on/off cadences or continuous
  hum       mains hum: 50 or 60 Hz and its harmonics
  noise     white, pink or brown noise, optionally band-limited (fans, hiss, wind)
All are steady in level and spectrum: no syllable-rate modulation, so they are not speech in
any language. (Music is left out: a held sung vowel is speech to the face.)
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
KINDS = ("carriers", "tones", "hum", "noise")


def _carriers(rng, n):
    t = np.arange(n) / SAMPLE_RATE
    k = int(rng.integers(8, 41))
    lo = rng.uniform(300, 1200)
    freqs = np.linspace(lo, min(3000.0, lo + rng.uniform(600, 2200)), k)
    hop = int(rng.uniform(0.01, 0.04) * SAMPLE_RATE)
    y = np.zeros(n)
    for f in freqs:
        phase = rng.uniform(0, 2 * np.pi, n // hop + 1).repeat(hop)[:n]   # symbol-rate phase jumps
        y += np.sin(2 * np.pi * f * t + phase)
    return y


def _tones(rng, n):
    t = np.arange(n) / SAMPLE_RATE
    y = sum(np.sin(2 * np.pi * rng.uniform(300, 2000) * t) for _ in range(int(rng.integers(1, 3))))
    if rng.random() < 0.6:                    # a cadence: on / off
        on, off = rng.uniform(0.1, 1.0), rng.uniform(0.1, 1.0)
        y = y * (np.mod(t, on + off) < on)
    return y


def _hum(rng, n):
    t = np.arange(n) / SAMPLE_RATE
    f0 = 50.0 if rng.random() < 0.5 else 60.0
    return sum(rng.uniform(0.1, 1.0) / h * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) for h in range(1, 12))


def _noise(rng, n):
    spec = np.fft.rfft(rng.normal(0, 1, n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    slope = rng.choice([0.0, 0.5, 1.0])       # white, pink, brown
    spec[1:] /= f[1:] ** slope
    spec[f < 40] = 0                          # microphones do not pass DC drift
    if rng.random() < 0.5:
        lo = rng.uniform(50, 2000)
        spec *= (f > lo) & (f < lo * rng.uniform(1.5, 6))
    return np.fft.irfft(spec, n)


_MAKERS = {"carriers": _carriers, "tones": _tones, "hum": _hum, "noise": _noise}


def sound(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """(seconds * 16000,) float32 of one kind, at a random speech-like level."""
    n = int(seconds * SAMPLE_RATE)
    y = _MAKERS[kind](rng, n)
    y = y + 1e-4 * rng.normal(0, 1, n)        # a microphone's own noise floor
    rms = np.sqrt(np.mean(y ** 2)) + 1e-12
    y *= 10 ** (rng.uniform(-32, -14) / 20) / rms
    return np.clip(y, -0.99, 0.99).astype(np.float32)


def bank(count: int, seconds: float, seed: int = 0) -> list:
    """``count`` sounds, the kinds in turn, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return [sound(KINDS[i % len(KINDS)], seconds, rng) for i in range(count)]
