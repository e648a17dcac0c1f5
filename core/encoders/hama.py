"""hama's phoneme recogniser as S2L's pretrained encoder: 191 IPA log-posteriors at 50 Hz.

hama (Apache-2.0) bundles a 4.7 MB CTC phoneme recogniser trained on real speech. We keep its
per-frame log posteriors (not the decoded phonemes): they carry timing and confidence for S2L
to learn from. Two engines compute them:

* ``numpy`` (default): ``hama_conformer``, the same network on numpy/BLAS reading the weights
  hama's wheel ships; about 10x faster than hama's engine and available on every platform.
* ``native``: hama's own library (one thread; Linux and macOS only), the reference the numpy
  engine is tested against.
"""

from __future__ import annotations

import numpy as np

from ..errors import EncoderUnavailable
from .base import SpeechEncoder

ENGINES = ("numpy", "native")
_NATIVE = None
_NUMPY = None


def availability(engine: str = "numpy") -> tuple[bool, str]:
    try:
        _load(engine)
    except EncoderUnavailable as exc:
        return False, str(exc)
    return True, f"hama phoneme recogniser ({engine} engine)"


def _load(engine: str):
    global _NATIVE, _NUMPY
    if engine == "numpy":
        if _NUMPY is None:
            from .hama_conformer import HamaConformer
            _NUMPY = HamaConformer()
        return _NUMPY
    if engine != "native":
        raise ValueError(f"Unknown hama engine '{engine}'; choose one of {', '.join(ENGINES)}.")
    if _NATIVE is None:
        try:
            from hama.asr import ASRModel
            _NATIVE = ASRModel()
        except Exception as exc:  # ImportError, or the native library missing for this platform
            raise EncoderUnavailable(
                f"hama's native engine cannot run here ({type(exc).__name__}: {exc}). "
                "Use hama's numpy engine or the 'mel' encoder instead."
            ) from None
    return _NATIVE


class HamaEncoder(SpeechEncoder):
    name = "hama"
    rate = 50.0
    dim = 191
    # hama's engine returns at most 1500 frames (30 s) per call: stay well below. The numpy
    # engine keeps the same chunks, so trained S2L networks see the features they learnt from.
    chunk_seconds = 20.0
    context_seconds = 3.0

    def __init__(self, engine: str = "numpy"):
        self.engine = engine
        model = _load(engine)
        if engine == "native":
            self.session = model.session
            self.dim = len(model.decoder_tokens)
            # One thread per call, and ctypes releases the GIL: encode two chunks at once.
            self.workers = 2
        else:
            self.network = model
            self.dim = model.config.vocab
            self.workers = 1  # BLAS already spreads each call over the cores

    def frames(self, samples16k: np.ndarray) -> np.ndarray:
        wav = np.clip(np.asarray(samples16k, np.float32), -1.0, 1.0)
        if len(wav) < 640:  # the recogniser needs a few frames of input
            wav = np.pad(wav, (0, 640 - len(wav)))
        if self.engine == "numpy":
            return self.network(wav)
        log_probs, lengths = self.session.run(
            ["log_probs", "out_lengths"],
            {"waveform": wav[None], "waveform_lengths": np.array([len(wav)], np.int64)},
        )
        return np.asarray(log_probs[0, : int(np.asarray(lengths).reshape(-1)[0])], np.float32)
