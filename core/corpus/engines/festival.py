"""Festival in batch mode: one festival process synthesises a list of texts with one voice;
``utt.save.segs`` writes every segment's end time and name next to the waveform.

Phone sets: the English voices (kal, ked, cmu_us_slt_arctic_hts) use the CMU/radio set, the
Italian diphone voices (lp, pc) a SAMPA-like set; both are converted to IPA in phonemes.py.
Festival reads ISO-8859-1 text, so texts are written in that encoding.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import unicodedata

import soundfile as sf

from ..phonemes import ARPABET, FESTIVAL_ITALIAN, from_alphabet
from . import Phone, Synthesis, VoiceSpec, tidy_phones, to_16k

PHONESETS = {"en": ARPABET, "it": FESTIVAL_ITALIAN}


def _latin1(text: str) -> str:
    out = []
    for ch in text:
        try:
            ch.encode("latin-1")
            out.append(ch)
        except UnicodeEncodeError:
            out.append(unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode())
    s = "".join(out)
    return s.replace("\\", " ").replace('"', " ")


class FestivalEngine:
    name = "festival"

    def __init__(self):
        if shutil.which("festival") is None:
            raise RuntimeError("festival not found: `apt-get install festival festvox-kallpc16k ...` "
                               "(tools/setup_corpus.sh does)")

    def synthesize(self, voice: VoiceSpec, text: str) -> Synthesis:
        return self.synthesize_many(voice, [text])[0]

    def synthesize_many(self, voice: VoiceSpec, texts: list) -> list:
        table = PHONESETS.get(voice.language, ARPABET)
        with tempfile.TemporaryDirectory() as tmp:
            lines = [f"({voice.name})"]
            if voice.rate != 1.0:
                lines.append(f"(Parameter.set 'Duration_Stretch {1.0 / voice.rate:.3f})")
            for i, t in enumerate(texts):
                base = os.path.join(tmp, f"u{i}")
                lines.append(
                    f'(unwind-protect (begin (set! u (SynthText "{_latin1(t)}")) '
                    f'(utt.save.wave u "{base}.wav" \'riff) (utt.save.segs u "{base}.segs")) nil)')
            script = os.path.join(tmp, "run.scm")
            with open(script, "w", encoding="latin-1") as fh:
                fh.write("\n".join(lines) + "\n")
            subprocess.run(["festival", "-b", script], capture_output=True, check=False, timeout=600)
            results = []
            for i, t in enumerate(texts):
                base = os.path.join(tmp, f"u{i}")
                if not (os.path.exists(base + ".wav") and os.path.exists(base + ".segs")):
                    results.append(None)
                    continue
                audio, sr = sf.read(base + ".wav", dtype="float32")
                if audio.ndim > 1:
                    audio = audio.mean(axis=1)
                audio = to_16k(audio, sr)
                phones, start = [], 0.0
                with open(base + ".segs", encoding="latin-1") as fh:
                    body = fh.read().split("#", 1)[-1]
                for line in body.splitlines():
                    parts = line.split()
                    if len(parts) < 3:
                        continue
                    end = float(parts[0])
                    phones.append(Phone(start, end, from_alphabet(parts[2], table)))
                    start = end
                results.append(Synthesis(audio=audio, phones=tidy_phones(phones, len(audio) / 16000), text=t))
        return results
