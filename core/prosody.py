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

SAMPLE_RATE = 16000
HOP = 160                # 10 ms
RATE = SAMPLE_RATE / HOP  # analysis frames per second
WINDOW = 640             # 40 ms: two periods of a 50 Hz voice
F0_MIN, F0_MAX = 60.0, 450.0


def frame_times(n: int) -> np.ndarray:
    """Centre time (s) of each analysis frame."""
    return (np.arange(n) * HOP + WINDOW / 2) / SAMPLE_RATE


def _frames(samples: np.ndarray, length: int) -> np.ndarray:
    x = np.asarray(samples, np.float64)
    n = max(1, int(np.ceil(len(x) / HOP)))
    padded = np.zeros(n * HOP + length)
    padded[:len(x)] = x
    idx = np.arange(n)[:, None] * HOP + np.arange(length)[None, :]
    return padded[idx]


def loudness_db(samples16k: np.ndarray) -> np.ndarray:
    """RMS level (dB) of each 40 ms analysis window."""
    fr = _frames(samples16k, WINDOW)
    return 10.0 * np.log10(np.mean(fr ** 2, axis=1) + 1e-10)


def yin_f0(samples16k: np.ndarray, threshold: float = 0.15, max_aperiodicity: float = 0.35,
           f0_min: float = F0_MIN, f0_max: float = F0_MAX, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(f0 Hz, voiced bool) per 10 ms frame; f0 is 0 where unvoiced."""
    tau_min = int(SAMPLE_RATE / f0_max)
    tau_max = int(np.ceil(SAMPLE_RATE / f0_min))
    length = WINDOW + tau_max
    fr_all = _frames(samples16k, length)
    n = len(fr_all)
    f0 = np.zeros(n)
    aper = np.ones(n)
    nfft = 1 << int(np.ceil(np.log2(2 * length)))
    for b0 in range(0, n, block):  # blocks bound memory on long clips
        fr = fr_all[b0:b0 + block]
        fr = fr - fr.mean(axis=1, keepdims=True)
        head = fr[:, :WINDOW]
        # cross(tau) = sum_j x_j x_{j+tau}, j < WINDOW
        spec = np.fft.rfft(fr, nfft) * np.conj(np.fft.rfft(head, nfft))
        cross = np.fft.irfft(spec, nfft)[:, :tau_max + 1]
        sq = np.concatenate([np.zeros((len(fr), 1)), np.cumsum(fr ** 2, axis=1)], axis=1)
        e0 = sq[:, WINDOW][:, None]
        taus = np.arange(tau_max + 1)
        e_tau = sq[:, taus + WINDOW] - sq[:, taus]
        diff = np.maximum(e0 + e_tau - 2.0 * cross, 0.0)
        cum = np.cumsum(diff[:, 1:], axis=1)
        cmnd = np.ones_like(diff)
        cmnd[:, 1:] = diff[:, 1:] * taus[1:] / np.maximum(cum, 1e-12)
        seg = cmnd[:, tau_min:tau_max]
        below = seg < threshold
        # first dip under the threshold, then walk to its local minimum; else the global minimum
        first = np.where(below.any(axis=1), below.argmax(axis=1), seg.argmin(axis=1))
        for i in range(len(fr)):
            t = first[i]
            if below[i].any():
                while t + 1 < seg.shape[1] and seg[i, t + 1] < seg[i, t]:
                    t += 1
            tau = t + tau_min
            a, bb, c = cmnd[i, tau - 1], cmnd[i, tau], cmnd[i, min(tau + 1, tau_max)]
            den = a - 2 * bb + c
            shift = 0.5 * (a - c) / den if den > 1e-12 else 0.0
            shift = float(np.clip(shift, -1.0, 1.0))
            f0[b0 + i] = SAMPLE_RATE / (tau + shift)
            aper[b0 + i] = bb
    db = loudness_db(samples16k)[:n]
    loud = db > max(db.max() - 40.0, -60.0)
    voiced = (aper < max_aperiodicity) & loud
    voiced = _remove_short_runs(voiced, 3)
    f0 = np.where(voiced, f0, 0.0)
    return _median_smooth_voiced(f0, voiced, 5), voiced


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
    x = np.asarray(samples16k, np.float64)
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
