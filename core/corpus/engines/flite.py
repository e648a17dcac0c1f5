"""Flite (CMU): ``flite -voice V -t TEXT -psdur -o out.wav`` prints ``phone:end_time`` pairs for
the segments of the synthesised utterance (CMU phone set, converted to IPA)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import unicodedata

import soundfile as sf

from ..phonemes import ARPABET, from_alphabet
from . import Phone, Synthesis, VoiceSpec, tidy_phones, to_16k


def ascii_text(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


class FliteEngine:
    name = "flite"

    def __init__(self):
        if shutil.which("flite") is None:
            raise RuntimeError("flite not found: `apt-get install flite` (tools/setup_corpus.sh does)")

    def synthesize_many(self, voice: VoiceSpec, texts: list) -> list:
        return [self.synthesize(voice, t) for t in texts]

    def synthesize(self, voice: VoiceSpec, text: str) -> Synthesis:
        with tempfile.TemporaryDirectory() as tmp:
            wav = os.path.join(tmp, "out.wav")
            cmd = ["flite", "-voice", voice.name, "-t", ascii_text(text), "-psdur", "-o", wav]
            if voice.rate != 1.0:
                cmd[1:1] = ["--setf", f"duration_stretch={1.0 / voice.rate:.3f}"]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            audio, sr = sf.read(wav, dtype="float32")
        audio = to_16k(audio, sr)
        phones, start = [], 0.0
        for tok in out.split():
            if ":" not in tok:
                continue
            name, _, end = tok.rpartition(":")
            try:
                end = float(end)
            except ValueError:
                continue
            phones.append(Phone(start, end, from_alphabet(name, ARPABET)))
            start = end
        return Synthesis(audio=audio, phones=tidy_phones(phones, len(audio) / 16000), text=text)
