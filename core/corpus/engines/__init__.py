"""Offline text-to-speech engines that report exact phone timings.

Each engine turns (voice, texts) into ``Synthesis`` objects: 16 kHz float32 audio plus the phone
spans (start, end in seconds, IPA) the engine itself used to make that audio, so the timings are
exact by construction (no recogniser, no alignment guesswork):

  * ``espeak``   espeak-ng through its C API (ctypes on libespeak-ng.so.1): phoneme events carry
                 the sample index at which each phoneme starts. espeak reports voiceless stops
                 at their release, so the silent closure before them is moved into the stop.
  * ``flite``    the flite command with ``-psdur`` (phone:end-time list printed on stdout).
  * ``festival`` festival in batch mode; ``utt.save.segs`` writes each segment's end time.
  * ``kokoro``   Kokoro-82M (neural, ONNX) from espeak-ng IPA; durations from the model's own
                 duration tensor, corrected for its lag and pause attribution (kokoro.py).
  * ``recorded`` real human recordings; phones from hama's recogniser (recorded.py). Not exact
                 like the TTS timings, but real voices.

``VoiceSpec`` names one voice: engine, engine voice name, language, speaking-rate and pitch
settings. Synthesis is deterministic for a given spec and text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SAMPLE_RATE = 16000


@dataclass
class Phone:
    start: float   # seconds
    end: float     # seconds
    ipa: str       # '' for a pause


@dataclass
class Synthesis:
    audio: np.ndarray          # (N,) float32 at 16 kHz
    phones: list               # list[Phone], contiguous, covering [0, duration]
    text: str = ""

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE


@dataclass(frozen=True)
class VoiceSpec:
    engine: str               # "espeak" | "flite" | "festival" | "kokoro"
    name: str                 # engine voice name, e.g. "en-us+m3", "slt", "voice_kal_diphone"
    language: str             # ISO code of the text language: en, de, es, it, ru, cs, pl, pt
    rate: float = 1.0         # speaking-rate factor (1 = engine default)
    pitch: float = 50.0       # espeak pitch 0-99 (others ignore it)
    extra: tuple = field(default_factory=tuple)

    @property
    def voice_id(self) -> str:
        return f"{self.engine}:{self.name}"


def get_engine(name: str):
    if name == "espeak":
        from .espeak import EspeakEngine
        return EspeakEngine()
    if name == "flite":
        from .flite import FliteEngine
        return FliteEngine()
    if name == "festival":
        from .festival import FestivalEngine
        return FestivalEngine()
    if name == "kokoro":
        from .kokoro import KokoroEngine
        return KokoroEngine()
    if name == "recorded":
        from .recorded import RecordedEngine
        return RecordedEngine()
    raise ValueError(f"unknown TTS engine {name!r} (espeak, flite, festival, kokoro, recorded)")


def to_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    audio = np.asarray(audio, np.float32)
    if rate == SAMPLE_RATE:
        return audio
    from math import gcd

    from scipy.signal import resample_poly
    g = gcd(int(rate), SAMPLE_RATE)
    return resample_poly(audio, SAMPLE_RATE // g, int(rate) // g).astype(np.float32)


def tidy_phones(phones: list, duration: float) -> list:
    """Make spans contiguous, inside [0, duration], drop empty ones, merge adjacent pauses, and
    add leading/trailing pauses so the spans cover the whole clip."""
    out = []
    for p in sorted(phones, key=lambda p: p.start):
        s, e = max(0.0, min(p.start, duration)), max(0.0, min(p.end, duration))
        if e - s <= 1e-4:
            continue
        if out and out[-1].end < s:
            out.append(Phone(out[-1].end, s, ""))
        if out and s < out[-1].end:
            s = out[-1].end
            if e - s <= 1e-4:
                continue
        if out and p.ipa == "" and out[-1].ipa == "":
            out[-1].end = e
            continue
        out.append(Phone(s, e, p.ipa))
    if not out or out[0].start > 0:
        out.insert(0, Phone(0.0, out[0].start if out else duration, ""))
    if out[-1].end < duration - 1e-4:
        if out[-1].ipa == "":
            out[-1].end = duration
        else:
            out.append(Phone(out[-1].end, duration, ""))
    out[-1].end = duration
    return [p for p in out if p.end - p.start > 1e-4]


VOICELESS_STOPS = ("p", "t", "k", "tʃ", "ts", "c", "q", "tɕ", "ʈ")


def move_closures_into_stops(audio: np.ndarray, phones: list, max_shift: float = 0.15) -> list:
    """Engines that time a voiceless stop from its burst leave the silent closure in the previous
    phone; lips (for /p/) close at the start of that silence, so move it into the stop."""
    hop = 80  # 5 ms at 16 kHz
    n = len(audio) // hop
    if n == 0:
        return phones
    energy = 10 * np.log10(np.square(audio[: n * hop].reshape(n, hop)).mean(axis=1) + 1e-12)
    silent = energy < energy.max() - 45.0
    for i in range(1, len(phones)):
        p, prev = phones[i], phones[i - 1]
        if p.ipa.strip("ʰ") not in VOICELESS_STOPS or prev.ipa == "":
            continue
        f = int(p.start * SAMPLE_RATE) // hop - 1
        lo = max(int((prev.start + 0.03) * SAMPLE_RATE) // hop, int((p.start - max_shift) * SAMPLE_RATE) // hop)
        j = f
        while j >= lo and 0 <= j < n and silent[j]:
            j -= 1
        new_start = (j + 1) * hop / SAMPLE_RATE
        if new_start < p.start - 0.004:
            prev.end = p.start = new_start
    return phones
