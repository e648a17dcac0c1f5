"""hama's phoneme recogniser as S2L's pretrained encoder: 191 IPA log-posteriors at 50 Hz.

hama (Apache-2.0) bundles a 4.7 MB CTC phoneme recogniser trained on real speech and runs it
with its own native engine, so it needs no torch or onnxruntime. We keep its per-frame log
posteriors (not the decoded phonemes): they carry timing and confidence for S2L to learn from.
"""

from __future__ import annotations

import numpy as np

from ..errors import EncoderUnavailable
from .base import SpeechEncoder

_MODEL = None


def availability() -> tuple[bool, str]:
    try:
        _model()
    except EncoderUnavailable as exc:
        return False, str(exc)
    return True, "hama phoneme recogniser"


def _model():
    global _MODEL
    if _MODEL is None:
        try:
            from hama.asr import ASRModel
            _MODEL = ASRModel()
        except Exception as exc:  # ImportError, or the native library missing for this platform
            raise EncoderUnavailable(
                f"The hama encoder cannot run here ({type(exc).__name__}: {exc}). "
                "Use the 'mel' encoder instead."
            ) from None
    return _MODEL


class HamaEncoder(SpeechEncoder):
    name = "hama"
    rate = 50.0
    dim = 191
    # The recogniser returns at most 1500 frames (30 s) per call: stay well below.
    chunk_seconds = 20.0
    context_seconds = 3.0
    # The native engine runs one thread per call and ctypes releases the GIL: two chunks at once.
    workers = 2

    def __init__(self):
        model = _model()
        self.session = model.session
        self.dim = len(model.decoder_tokens)

    def frames(self, samples16k: np.ndarray) -> np.ndarray:
        wav = np.clip(np.asarray(samples16k, np.float32), -1.0, 1.0)
        if len(wav) < 640:  # the recogniser needs a few frames of input
            wav = np.pad(wav, (0, 640 - len(wav)))
        log_probs, lengths = self.session.run(
            ["log_probs", "out_lengths"],
            {"waveform": wav[None], "waveform_lengths": np.array([len(wav)], np.int64)},
        )
        return np.asarray(log_probs[0, : int(np.asarray(lengths).reshape(-1)[0])], np.float32)
