"""Real recordings as a corpus "engine": human voices labelled by the teacher.

TTS voices are few and unlike people, and S2L regresses towards the mean on voices unlike its
training voices. Here a folder of real recordings (e.g. Debian's asterisk-core-sounds: several
human speakers and languages, public telephone prompts) is a voice; each file is an utterance.
The phones come from hama's phoneme recogniser (the same real-speech recogniser behind the
``hama`` encoder) and the teacher animates them like any TTS output.

hama's spans are CTC emissions: a phone's span reaches until the next phone is emitted, so it
also covers any silence after it. Spans are therefore capped (``MAX_PHONE``) and cut where the
audio is silent for ``MIN_PAUSE`` or longer, so the face rests in the pauses as it does for TTS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import SAMPLE_RATE, Phone, Synthesis, VoiceSpec, tidy_phones

MAX_PHONE = 0.25          # seconds; longer spans are CTC tails over silence
MIN_PAUSE = 0.08          # seconds of silence that make a pause
SILENCE_DB = 35.0         # below the clip's speech level (95th percentile of 10 ms frames)


class RecordedEngine:
    name = "recorded"

    def __init__(self):
        from hama.asr import ASRModel
        self._asr = ASRModel()

    def synthesize_many(self, voice: VoiceSpec, paths: list) -> list:
        return [self.synthesize(voice, p) for p in paths]

    def synthesize(self, voice: VoiceSpec, path: str) -> Synthesis | None:
        from ... import audio as audio_io
        try:
            samples = audio_io.load_audio(path)
        except Exception:   # an unreadable file is skipped like a failed synthesis
            return None
        spans = self._asr.phoneme_spans(self._asr.transcribe_waveform(samples, SAMPLE_RATE))
        return Synthesis(samples, phones_from_spans(spans, samples), text=Path(path).name)


def phones_from_spans(spans, samples: np.ndarray) -> list:
    """Timed phones the teacher can animate from hama's phoneme spans of ``samples`` (16 kHz)."""
    phones = [Phone(s.start_ms / 1000.0, min(s.end_ms / 1000.0, s.start_ms / 1000.0 + MAX_PHONE), s.phoneme)
              for s in spans]
    for prev, nxt in zip(phones, phones[1:]):     # word separators leave short gaps: not pauses
        if 0 < nxt.start - prev.end < MIN_PAUSE:
            prev.end = nxt.start
    return cut_at_silence(tidy_phones(phones, len(samples) / SAMPLE_RATE), samples)


def cut_at_silence(phones: list, samples: np.ndarray) -> list:
    """Turn silent stretches (>= MIN_PAUSE) inside phones into pauses."""
    hop = SAMPLE_RATE // 100                      # 10 ms frames
    n = len(samples) // hop
    if n == 0:
        return phones
    db = 10 * np.log10(np.square(samples[: n * hop].reshape(n, hop).astype(np.float64)).mean(axis=1) + 1e-12)
    silent = np.r_[False, db < np.percentile(db, 95) - SILENCE_DB, False]
    edges = np.flatnonzero(np.diff(silent.astype(np.int8)))
    pauses = [(a / 100, b / 100) for a, b in zip(edges[::2], edges[1::2]) if (b - a) / 100 >= MIN_PAUSE]
    out = []
    for p in phones:
        cur = p.start
        for s, e in pauses:
            if not p.ipa or e <= cur or s >= p.end:
                continue
            if s > cur:
                out.append(Phone(cur, s, p.ipa))
            out.append(Phone(max(s, cur), min(e, p.end), ""))
            cur = min(e, p.end)
        if cur < p.end:
            out.append(Phone(cur, p.end, p.ipa))
    return tidy_phones(out, len(samples) / SAMPLE_RATE)


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def voice_files(root: str, pattern: str = "**/*") -> list:
    """The recordings of one voice (WAV/FLAC/Ogg under ``root`` matching ``pattern``; default:
    the whole folder, recursively), in a stable order."""
    return sorted(str(p) for p in Path(root).glob(pattern) if p.suffix.lower() in AUDIO_SUFFIXES)
