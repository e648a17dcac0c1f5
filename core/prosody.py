"""Prosody of speech in numpy: F0 (a YIN-style tracker), loudness, speech activity and a
pitch-accent envelope, on 16 kHz mono audio at 100 analysis frames per second.

The upper-face layer needs these because hama's phoneme features carry no pitch: an eyebrow
raise accompanies a pitch accent (a local F0 peak on a stressed, loud syllable), and blinks
cluster at pauses and phrase boundaries. Nothing here uses scipy, so it runs in stock Blender.

YIN (de Cheveigne and Kawahara 2002): for each 40 ms window the cumulative-mean-normalised
difference function d'(tau) is computed (the cross term by FFT, the energies by cumulative
sums); the first lag where d' dips under a threshold, refined by parabolic interpolation,
is the period. Frames whose best d' stays high, or that are quiet, are unvoiced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import parallel

SAMPLE_RATE = 16000
HOP = 160                # 10 ms
RATE = SAMPLE_RATE / HOP  # analysis frames per second
WINDOW = 640             # 40 ms: two periods of a 50 Hz voice
F0_MIN, F0_MAX = 60.0, 450.0
YIN_RATE = 8000
_CHUNK = 2048 * HOP          # samples per chunk of the long-clip filters (2.6 MB of float64; even, whole hops)
MIN_FRAMES_PER_THREAD = 200   # loud 10 ms frames: below, one thread (the halves are too short)


def frame_times(n: int) -> np.ndarray:
    """Centre time (s) of each analysis frame."""
    return (np.arange(n) * HOP + WINDOW / 2) / SAMPLE_RATE


def _num_frames(num_samples: int) -> int:
    return max(1, int(np.ceil(num_samples / HOP)))


def loudness_db(samples16k: np.ndarray) -> np.ndarray:
    """RMS level (dB) of each 40 ms analysis window.

    The running sum of squares is accumulated a chunk at a time (each chunk's cumulative sum
    starts from the last total, so the sums are the same, one after the other) and kept only
    at hop boundaries: a 10-minute clip needs kilobytes, not four float64 copies of itself."""
    x = np.asarray(samples16k)
    n = _num_frames(len(x))
    total = n * HOP + WINDOW                 # the zero-padded length the windows read
    sq = np.empty(total // HOP + 1)          # sq[k] = sum of squares of the first k * HOP samples
    sq[0] = carry = 0.0
    for c0 in range(0, total, _CHUNK):
        c1 = min(total, c0 + _CHUNK)
        part = np.zeros(c1 - c0 + 1)
        part[0] = carry
        seg = x[c0:min(c1, len(x))]
        part[1:1 + len(seg)] = seg
        part[1:] **= 2
        np.cumsum(part, out=part)
        sq[c0 // HOP + 1:c1 // HOP + 1] = part[HOP::HOP]
        carry = part[-1]
    starts = np.arange(n)
    power = np.maximum(sq[starts + WINDOW // HOP] - sq[starts], 0.0) / WINDOW
    return 10.0 * np.log10(power + 1e-10)


def yin_f0(samples16k: np.ndarray, threshold: float = 0.15, max_aperiodicity: float = 0.35,
           f0_min: float = F0_MIN, f0_max: float = F0_MAX, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(f0 Hz, voiced bool) per 10 ms frame; f0 is 0 where unvoiced.

    Runs at 8 kHz (F0 and its first harmonics are far below 4 kHz): a quarter of the work."""
    x16 = _as_float(samples16k)
    n = _num_frames(len(x16))
    db = loudness_db(x16)[:n]
    loud = db > max(db.max() - 40.0, -60.0)
    sr = YIN_RATE
    hop, window = HOP * sr // SAMPLE_RATE, WINDOW * sr // SAMPLE_RATE
    tau_min = int(sr / f0_max)
    tau_max = int(np.ceil(sr / f0_min))
    length = window + tau_max
    padded = np.zeros(n * hop + length)
    _halve_into(x16, padded)
    f0 = np.zeros(n)
    aper = np.ones(n)
    nfft = 1 << int(np.ceil(np.log2(2 * length)))
    taus = np.arange(tau_max + 1)
    todo = np.flatnonzero(loud)          # quiet frames are unvoiced anyway
    # Two threads on two cores (FFTs and array operations release the GIL), each with half a
    # block at a time, so memory stays where one thread's blocks kept it.
    threads = parallel.default_threads() if len(todo) >= 2 * MIN_FRAMES_PER_THREAD else 1
    step = max(1, block // threads)

    def frames_from(start: int, stop: int) -> None:   # frames todo[start:stop]; each frame's numbers are its own
        for b0 in range(start, stop, step):  # blocks bound memory on long clips
            frames = todo[b0:min(stop, b0 + step)]
            fr = padded[(frames * hop)[:, None] + np.arange(length)[None, :]]
            fr = fr - fr.mean(axis=1, keepdims=True)
            # YIN's difference d(tau) = e(0) + e(tau) - 2 cross(tau), cross by FFT, energies by cumsum
            spec = np.fft.rfft(fr, nfft) * np.conj(np.fft.rfft(fr[:, :window], nfft))
            cross = np.fft.irfft(spec, nfft)[:, :tau_max + 1]
            sq = np.concatenate([np.zeros((len(fr), 1)), np.cumsum(fr ** 2, axis=1)], axis=1)
            diff = np.maximum(sq[:, window][:, None] + sq[:, taus + window] - sq[:, taus] - 2.0 * cross, 0.0)
            cmnd = np.ones_like(diff)
            cmnd[:, 1:] = diff[:, 1:] * taus[1:] / np.maximum(np.cumsum(diff[:, 1:], axis=1), 1e-12)
            seg = cmnd[:, tau_min:tau_max]
            below = seg < threshold
            has = below.any(axis=1)
            # the first dip under the threshold, walked down to its local minimum; else the global minimum
            first = below.argmax(axis=1)
            cols = np.arange(seg.shape[1])[None, :]
            rising = np.ones_like(below)
            rising[:, :-1] = seg[:, 1:] >= seg[:, :-1]
            t = np.where(has, (rising & (cols >= first[:, None])).argmax(axis=1), seg.argmin(axis=1))
            tau = t + tau_min
            rows = np.arange(len(fr))
            a, bb, c = cmnd[rows, tau - 1], cmnd[rows, tau], cmnd[rows, np.minimum(tau + 1, tau_max)]
            den = a - 2 * bb + c
            shift = np.clip(np.where(den > 1e-12, 0.5 * (a - c) / np.where(den > 1e-12, den, 1.0), 0.0), -1.0, 1.0)
            f0[frames] = sr / (tau + shift)
            aper[frames] = bb

    parallel.split_frames(frames_from, len(todo), threads)
    voiced = (aper < max_aperiodicity) & loud
    voiced = _remove_short_runs(voiced, 3)
    f0 = np.where(voiced, f0, 0.0)
    return _median_smooth_voiced(f0, voiced, 5), voiced


def _halve(x: np.ndarray) -> np.ndarray:
    """16 kHz -> 8 kHz: a 31-tap windowed-sinc low-pass at 3.6 kHz, then every other sample."""
    return np.convolve(np.asarray(x, np.float64), _HALVE_TAPS, mode="same")[::2]


def _halve_into(x: np.ndarray, out: np.ndarray) -> None:
    """``out[:m] = _halve(x)[:m]`` (m = the shorter length) a chunk at a time: each chunk is
    filtered with its 15 neighbours on each side, so every output sample is the same dot
    product of the same 31 inputs as in one call (the clip's own ends stay its ends)."""
    if len(x) <= _CHUNK:                     # one piece (and numpy's own rule for tiny clips)
        halved = _halve(x)
        m = min(len(halved), len(out))
        out[:m] = halved[:m]
        return
    n = min(len(x), 2 * len(out))
    half = len(_HALVE_TAPS) // 2
    for c0 in range(0, n, _CHUNK):           # _CHUNK is even: chunks start on kept samples
        c1 = min(n, c0 + _CHUNK)
        lo, hi = max(0, c0 - half), min(len(x), c1 + half)
        if hi - lo < len(_HALVE_TAPS):      # numpy would swap a signal shorter than the taps
            lo = max(0, hi - len(_HALVE_TAPS))
            hi = min(len(x), lo + len(_HALVE_TAPS))
        filtered = np.convolve(np.asarray(x[lo:hi], np.float64), _HALVE_TAPS, mode="same")
        kept = filtered[c0 - lo:c1 - lo:2]
        out[c0 // 2:c0 // 2 + len(kept)] = kept


def _halve_taps() -> np.ndarray:
    k = np.arange(-15, 16)
    taps = 0.45 * np.sinc(0.45 * k) * np.hamming(31)
    taps /= taps.sum()
    return taps


_HALVE_TAPS = _halve_taps()


def _as_float(samples: np.ndarray) -> np.ndarray:
    """Samples as float32 or float64, uncopied when they already are (chunks are converted to
    float64 where they are used: exact, and without a float64 copy of a long clip)."""
    x = np.asarray(samples)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def _remove_short_runs(mask: np.ndarray, min_len: int) -> np.ndarray:
    out = mask.copy()
    for a, b in runs(mask):
        if b - a < min_len:
            out[a:b] = False
    return out


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _median_smooth_voiced(f0, voiced, width):
    """Median filter inside each voiced run (removes isolated octave errors)."""
    out = f0.copy()
    h = width // 2
    for a, b in runs(voiced):
        seg = f0[a:b]
        padded = np.pad(seg, h, mode="edge")
        win = np.lib.stride_tricks.sliding_window_view(padded, width)
        out[a:b] = np.median(win, axis=1)
    return out


def smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Gaussian smoothing with edge padding."""
    if sigma_frames <= 0:
        return np.asarray(x, np.float64)
    h = int(np.ceil(3 * sigma_frames))
    k = np.exp(-0.5 * (np.arange(-h, h + 1) / sigma_frames) ** 2)
    k /= k.sum()
    return np.convolve(np.pad(np.asarray(x, np.float64), h, mode="edge"), k, mode="valid")


@dataclass
class Prosody:
    """Per 10 ms frame."""
    f0: np.ndarray            # Hz, 0 where unvoiced
    voiced: np.ndarray        # bool
    loudness_db: np.ndarray
    speech: np.ndarray        # bool: speech activity (short gaps inside words filled)
    semitones: np.ndarray     # F0 in semitones above the clip's median voiced F0 (0 where unvoiced)
    baseline: np.ndarray      # slowly varying pitch baseline (semitones), the declination line
    accent: np.ndarray        # pitch-accent envelope >= 0: F0 above baseline, weighted by loudness
    low_stress: np.ndarray    # >= 0: loud syllables with F0 below the baseline (emphatic low stress)

    @property
    def num_frames(self) -> int:
        return len(self.f0)


def analyse(samples16k: np.ndarray) -> Prosody:
    x = _as_float(samples16k)
    f0, voiced = yin_f0(x)
    db = loudness_db(x)[:len(f0)]
    speech = speech_activity(db)
    st = np.zeros(len(f0))
    if voiced.any():
        ref = np.median(f0[voiced])
        st[voiced] = 12.0 * np.log2(f0[voiced] / ref)
    # Declination baseline: voicing-weighted mean over +-0.75 s, so accents stand out of it.
    w = smooth(voiced.astype(float), 25.0)
    base = smooth(st * voiced, 25.0) / np.maximum(w, 1e-3)
    excursion = np.where(voiced, st - base, 0.0)
    speech_db = np.median(db[speech]) if speech.any() else db.max()
    level = np.clip((db - speech_db + 6.0) / 12.0, 0.0, 1.0)
    accent = np.clip(excursion / 3.0, 0.0, 1.5) * (0.4 + 0.6 * level)
    low = np.clip((-excursion - 1.0) / 3.0, 0.0, 1.0) * np.clip((db - speech_db + 2.0) / 6.0, 0.0, 1.0)
    return Prosody(f0, voiced, db, speech, st, base, smooth(accent, 3.0), smooth(low, 3.0))


def speech_activity(db: np.ndarray) -> np.ndarray:
    """Frames of speech: louder than both the noise floor + 12 dB and the peak - 35 dB, with gaps
    under 150 ms (stop closures inside words) filled and blips under 60 ms removed."""
    floor = np.percentile(db, 10)
    speech = db > max(floor + 12.0, db.max() - 35.0)
    gaps = ~speech
    for a, b in runs(gaps):
        if a > 0 and b < len(db) and b - a < 15:
            speech[a:b] = True
    return _remove_short_runs(speech, 6)


def to_frames(x: np.ndarray, fps: float, num_frames: int) -> np.ndarray:
    """Resample a 100 Hz analysis track to animation frames (linear)."""
    t = np.arange(num_frames) / fps
    src = frame_times(len(x))
    return np.interp(t, src, np.asarray(x, np.float64))
