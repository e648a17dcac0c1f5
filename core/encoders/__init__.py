"""Pluggable speech encoders: the frozen part of S2L's front end.

Each encoder turns 16 kHz mono samples into (T, dim) float32 frames at ``rate`` Hz, frame ``j``
centred at ``(j + 0.5) / rate`` seconds. Three are available:

* ``hama``: per-frame IPA log-posteriors of hama's phoneme recogniser (trained on real speech),
  run in numpy from the weights hama's wheel ships (or by hama's native engine).
* ``mel``: log-mel spectrogram in pure numpy; S2L trains a small conv stack on top of it.
  Needs nothing but numpy.
* ``wav2vec2``: hidden states of a transformers ``Wav2Vec2Model`` loaded from a local folder.
"""

from __future__ import annotations

from .base import SpeechEncoder

NAMES = ("hama", "mel", "wav2vec2")


def get_encoder(name: str, **options) -> SpeechEncoder:
    if name == "hama":
        from .hama import HamaEncoder
        return HamaEncoder(**options)
    if name == "mel":
        from .mel import MelEncoder
        return MelEncoder()
    if name == "wav2vec2":
        from .wav2vec2 import Wav2Vec2Encoder
        return Wav2Vec2Encoder(**options)
    raise ValueError(f"Unknown speech encoder '{name}'; choose one of {', '.join(NAMES)}.")


def hama_available() -> tuple[bool, str]:
    """Whether hama's recogniser can run here (its wheel's weights are installed), and why not."""
    from .hama import availability
    return availability()
