"""Audio loading: any rate, mono or stereo, WAV/FLAC/OGG -> 16 kHz mono float32.

soundfile reads every format when it is installed; inside stock Blender (no soundfile) the
standard-library ``wave`` module reads PCM WAV, and the add-on passes samples it decoded with
Blender's own audio library. Resampling is a windowed-sinc polyphase filter in numpy, so it
is anti-aliased without scipy.
"""

from __future__ import annotations

import wave
from fractions import Fraction
from pathlib import Path

import numpy as np

from . import limits
from .errors import AudioError

SAMPLE_RATE = 16000


def load_audio(source, sample_rate: int | None = None) -> np.ndarray:
    """16 kHz mono float32 samples from a path, or from an array with its ``sample_rate``."""
    if isinstance(source, (str, Path)):
        samples, rate = read_file(source)
    else:
        if sample_rate is None:
            raise AudioError("Audio samples were given without their sample rate.")
        samples, rate = np.asarray(source), int(sample_rate)
    mono = to_mono(samples)
    if mono.size == 0:
        raise AudioError("The audio is empty (no samples).")
    limits.check_audio(mono.size, rate, str(source) if isinstance(source, (str, Path)) else "The audio")
    if not np.isfinite(mono).all():
        raise AudioError("The audio contains NaN or infinite samples.")
    return resample(mono, rate, SAMPLE_RATE)


def read_file(path) -> tuple[np.ndarray, int]:
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"Audio file not found: {path}")
    if path.stat().st_size == 0:
        raise AudioError(f"Audio file is empty: {path}")
    try:
        import soundfile
    except ImportError:
        soundfile = None
    if soundfile is not None:
        try:
            data, rate = soundfile.read(str(path), dtype="float32", always_2d=False)
        except Exception as exc:  # soundfile raises several types for bad files
            raise AudioError(f"Cannot read audio {path.name}: {exc}") from None
        return data, int(rate)
    if path.suffix.lower() != ".wav":
        raise AudioError(
            f"Cannot read {path.name}: without the soundfile package only WAV files can be read here."
        )
    return _read_wav(path)


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    try:
        with wave.open(str(path), "rb") as fh:
            rate, channels, width = fh.getframerate(), fh.getnchannels(), fh.getsampwidth()
            raw = fh.readframes(fh.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"Cannot read WAV {path.name}: {exc}") from None
    if width == 1:
        data = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        data = (np.where(ints & 0x800000, ints - (1 << 24), ints)).astype(np.float32) / float(1 << 23)
    elif width == 4:
        data = np.frombuffer(raw, "<i4").astype(np.float32) / float(1 << 31)
    else:
        raise AudioError(f"{path.name}: unsupported WAV sample width {width} bytes.")
    return data.reshape(-1, channels), rate


def to_mono(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / float(max(-np.iinfo(x.dtype).min, np.iinfo(x.dtype).max))
    x = x.astype(np.float32, copy=False)
    if x.ndim == 2:
        # (frames, channels) as soundfile gives; a (channels, frames) array has few rows.
        x = x.mean(axis=1) if x.shape[1] <= x.shape[0] else x.mean(axis=0)
    elif x.ndim != 1:
        raise AudioError(f"Audio must be 1-D (mono) or 2-D (frames, channels); got shape {x.shape}.")
    return x


def resample(x: np.ndarray, rate_in: int, rate_out: int, zero_crossings: int = 32) -> np.ndarray:
    """Band-limited resampling: Kaiser-windowed sinc, cut-off at the lower Nyquist rate."""
    if rate_in <= 0 or rate_out <= 0:
        raise AudioError(f"Invalid sample rate {rate_in} -> {rate_out}.")
    x = np.asarray(x, np.float32)
    if rate_in == rate_out:
        return x.copy()
    ratio = Fraction(int(rate_out), int(rate_in))
    up, down = ratio.numerator, ratio.denominator
    n_out = int(np.ceil(len(x) * up / down))
    cutoff = min(1.0, up / down)  # fraction of the input Nyquist that survives
    half = int(np.ceil(zero_crossings / cutoff))
    taps = np.arange(-half, half + 1)
    fast = up * (down + len(taps)) <= 1 << 22
    if fast:  # see below; whole periods of `up` outputs may read past the end of the input
        periods = -(-n_out // up)
        offsets = np.arange(up) * down // up
        groups = np.array_split(np.arange(up), max(1, min(up, round(down / len(taps)))))
        spans = [int(offsets[g[-1]] - offsets[g[0]]) + len(taps) for g in groups]
        tail = max(half + 2, periods * down + down + max(spans) + 1 - (half + 1 + len(x)))
    else:
        tail = half + 2
    padded = np.concatenate([np.zeros(half + 1, np.float32), x, np.zeros(tail, np.float32)])

    def kernel(p) -> np.ndarray:
        """Taps for outputs whose position k*down/up has fractional part p/up (p: an int, or an
        array of them for one row each; every tap is computed alone, so the values agree)."""
        t = taps - np.asarray(p)[..., None] / up
        window = np.i0(8.0 * np.sqrt(np.clip(1.0 - (t / (half + 1)) ** 2, 0.0, 1.0))) / np.i0(8.0)
        return (cutoff * np.sinc(cutoff * t) * window).astype(np.float32)

    if fast:
        # Output m*up + r (r < up) reads the input from m*down + (r*down)//up on, with the taps of
        # phase (r*down) % up. A group of consecutive r shares one window of the input: its
        # filters, placed at their offsets, form one small matrix, and each block of periods
        # m is one BLAS product with the overlapping input windows. Output k's first tap reads
        # padded[k*down//up + 1].
        result = np.empty(periods * up, np.float32)
        table = result.reshape(periods, up)
        rows = max(1, (1 << 20) // max(spans))  # bounds memory: rows x span windows per product
        filters = kernel(np.arange(up))   # every phase at once (one vectorised Bessel call)
        for g, span in zip(groups, spans):
            bank = np.zeros((span, len(g)), np.float32)
            for j, r in enumerate(g):
                offset, p = divmod(int(r) * down, up)
                bank[offset - offsets[g[0]]:offset - offsets[g[0]] + len(taps), j] = filters[p]
            for m0 in range(0, periods, rows):
                m1 = min(periods, m0 + rows)
                first = padded[1 + m0 * down + offsets[g[0]]:]
                windows = np.lib.stride_tricks.as_strided(first, (m1 - m0, span), (first.strides[0] * down, first.strides[0]))
                table[m0:m1, g[0]:g[-1] + 1] = np.ascontiguousarray(windows) @ bank
        return result[:n_out]
    # Rates with a huge common period (e.g. 16001 Hz): gather per phase instead.
    out = np.empty(n_out, np.float32)
    filters = {}
    block = 1 << 15  # bounds memory: block x taps gather
    for start in range(0, n_out, block):
        k = np.arange(start, min(n_out, start + block))
        base, phase = np.divmod(k * down, up)
        for p in np.unique(phase):
            if p not in filters:
                filters[p] = kernel(p)
            sel = np.flatnonzero(phase == p)
            idx = base[sel, None] + taps[None, :] + half + 1
            out[k[sel]] = padded[idx] @ filters[p]
    return out


def duration_seconds(samples16k: np.ndarray) -> float:
    return len(samples16k) / float(SAMPLE_RATE)


SPEECH_LEVEL = 0.05      # RMS of the loud (speech) frames after normalisation, about -26 dBFS
MAX_GAIN = 100.0         # +40 dB at most, so near-silence is not blown up into noise


def normalise_loudness(x: np.ndarray) -> np.ndarray:
    """Scale a whole clip so its speech sits at a fixed level (the encoders are level-sensitive).

    The level is the 90th percentile of 20 ms frame RMS, i.e. that of voiced speech whatever
    the share of pauses. Computed once per clip, before any chunking, in training and inference
    alike.
    """
    x = np.asarray(x, np.float32)
    n = len(x) // 320
    if n == 0:
        return x.copy()
    level = float(np.percentile(frame_rms(x[: n * 320], 320), 90))
    if level <= 1e-8:
        return x.copy()
    gain = min(MAX_GAIN, SPEECH_LEVEL / level)
    out = x * np.float32(gain)  # one new array: long clips are tens of MB
    return np.clip(out, -1.0, 1.0, out=out)


def frame_rms(x: np.ndarray, hop: int) -> np.ndarray:
    """RMS of consecutive ``hop``-sample frames (float64 sums, in chunks: bounded memory on hours of audio)."""
    n = len(x) // hop
    out = np.empty(n)
    step = max(1, (1 << 20) // hop)
    for s in range(0, n, step):
        block = x[s * hop:(s + step) * hop].reshape(-1, hop).astype(np.float64)
        out[s:s + len(block)] = np.sqrt(np.mean(block * block, axis=1))
    return out


def frame_level_db(x: np.ndarray, rate: int, fps: float, num_frames: int, window_s: float = 0.04) -> np.ndarray:
    """(num_frames,) mean power in dB of the ``window_s`` of audio centred on each animation
    frame (frame i shows time i / fps); -100 dB where the window holds no samples."""
    x = np.asarray(x, np.float64)
    half = int(window_s / 2 * rate)
    centres = (np.arange(num_frames) / fps * rate).astype(np.int64)
    energy = np.concatenate([[0.0], np.cumsum(x * x)])     # window sums in O(1) each
    lo, hi = np.clip(centres - half, 0, len(x)), np.clip(centres + half, 0, len(x))
    power = (energy[hi] - energy[lo]) / np.maximum(hi - lo, 1)
    return 10 * np.log10(np.maximum(power, 0.0) + 1e-10)


def is_silent(x: np.ndarray, threshold: float = 1e-3) -> bool:
    """True when no 20 ms frame rises above ``threshold`` RMS (about -60 dBFS)."""
    x = np.asarray(x, np.float32)
    n = max(1, len(x) // 320)
    frames = np.resize(x, n * 320).reshape(n, 320) if len(x) >= 320 else x[None]
    return float(np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)).max()) < threshold
