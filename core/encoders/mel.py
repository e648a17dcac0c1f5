"""Log-mel spectrogram front end in pure numpy (80 bands, 50 Hz), for platforms without hama.

S2L trains a small 1-D conv stack on top of these frames (S2LConfig.frontend_channels).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .base import SAMPLES_PER_FRAME, SpeechEncoder

N_FFT = 512
N_MELS = 80
F_MIN, F_MAX = 40.0, 7600.0     # Hz, the filterbank's outer edges


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=1)
def mel_filterbank(sample_rate: int = 16000, n_fft: int = N_FFT, n_mels: int = N_MELS,
                   f_min: float = F_MIN, f_max: float = F_MAX) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters on the HTK mel scale, unit area."""
    bins = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    tri = np.maximum(0.0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))
    return (tri * (2.0 / (hi - lo))).astype(np.float32)


def log_mel(samples16k: np.ndarray) -> np.ndarray:
    """(T, 80) log-mel frames; frame j is centred on sample (j + 0.5) * 320."""
    x = np.asarray(samples16k, np.float32)
    n = max(1, len(x) // SAMPLES_PER_FRAME)
    centres = (np.arange(n) * SAMPLES_PER_FRAME + SAMPLES_PER_FRAME // 2)
    padded = np.pad(x, (N_FFT // 2, N_FFT // 2 + SAMPLES_PER_FRAME))
    idx = centres[:, None] + np.arange(N_FFT)[None, :]
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
    spectrum = np.abs(np.fft.rfft(padded[idx] * window, axis=1)) ** 2
    return np.log(spectrum.astype(np.float32) @ mel_filterbank().T + 1e-6)


class MelEncoder(SpeechEncoder):
    name = "mel"
    rate = 50.0
    dim = N_MELS

    def frames(self, samples16k: np.ndarray) -> np.ndarray:
        return log_mel(samples16k)
