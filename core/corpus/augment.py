"""Audio augmentation that keeps phone timing exact.

Each transform returns the new audio and the factor by which time was stretched (1 for all but
tempo / formant changes); ``augment`` scales the phone spans by the measured ratio of output to
input length, so the teacher animates exactly what is heard.

  tempo      sox ``tempo`` (WSOLA, pitch kept), factor 0.85-1.2: timings scaled
  pitch      sox ``pitch`` +-350 cents, duration kept
  formant    sox ``speed r`` then ``tempo 1/r``: spectral envelope and pitch shift together
  reverb     synthetic room impulse response (exponentially decaying noise, RT60 0.15-0.6 s)
  band       telephone (300-3400 Hz, 8 kHz, mu-law) or laptop microphone (high-pass, soft
             low-pass, resonance)
  noise      white or pink noise at 5-35 dB SNR
  loudness   level -32 to -14 dBFS RMS, peaks kept below full scale

and one applied at training time instead (tools/train_s2l.py --codec-share), to the audio of
whole utterances whose timing it keeps:

  gsm        a GSM 06.10 full-rate round trip (sox): the lossy 13 kbit/s telephone codec
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np

from .engines import SAMPLE_RATE, Phone

PROBABILITIES = {"tempo": 0.35, "pitch": 0.3, "formant": 0.25, "reverb": 0.3, "band": 0.3, "noise": 0.5}


FLOAT = ["-t", "f32", "-r", str(SAMPLE_RATE), "-c", "1"]     # sox's view of our float samples


def _run_sox(*args: str, data: bytes) -> bytes:
    if shutil.which("sox") is None:
        raise RuntimeError("sox not found: `apt-get install sox` (tools/setup_corpus.sh does)")
    return subprocess.run(["sox", "-V1", *args], input=data, capture_output=True, check=True).stdout


def _sox(audio: np.ndarray, *effects: str) -> np.ndarray:
    out = _run_sox(*FLOAT, "-", *FLOAT, "-", *effects, data=np.asarray(audio, "<f4").tobytes())
    return np.frombuffer(out, "<f4").astype(np.float32)


def gsm(audio: np.ndarray) -> np.ndarray:
    """Audio coded to GSM 06.10 (8 kHz) and decoded back, as many telephone prompts reach a
    listener: band-limited, with the codec's coarse spectral envelope and noisy excitation. Same
    length; no dither either way, so the same audio always gives the same result."""
    gsm_8k = ["-t", "gsm", "-r", "8000", "-c", "1"]
    coded = _run_sox("-D", *FLOAT, "-", *gsm_8k, "-", data=np.asarray(audio, "<f4").tobytes())
    y = np.frombuffer(_run_sox("-D", *gsm_8k, "-", *FLOAT, "-", data=coded), "<f4").astype(np.float32)[: len(audio)]
    return np.pad(y, (0, len(audio) - len(y)))


CODECS = {"gsm": gsm}


def tempo(audio, factor: float):
    return _sox(audio, "tempo", "-s", f"{factor:.4f}")


def pitch(audio, cents: float):
    return _sox(audio, "pitch", f"{cents:.1f}")


def formant(audio, ratio: float):
    return _sox(audio, "speed", f"{ratio:.4f}", "tempo", "-s", f"{1.0 / ratio:.4f}")


def reverb(audio, rng: np.random.Generator, rt60: float, wet: float):
    from scipy.signal import fftconvolve
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    ir = rng.normal(0, 1, n) * np.exp(-6.9 * t / rt60)
    ir[: int(0.002 * SAMPLE_RATE)] = 0.0          # no early energy before the direct sound
    ir *= wet / (np.sqrt(np.sum(ir ** 2)) + 1e-9)
    ir[0] = 1.0
    return fftconvolve(audio, ir)[: len(audio)].astype(np.float32)


def band(audio, kind: str, rng: np.random.Generator):
    from scipy.signal import butter, resample_poly, sosfilt
    if kind == "telephone":
        sos = butter(4, [300, 3400], btype="band", fs=SAMPLE_RATE, output="sos")
        y = sosfilt(sos, audio)
        y = resample_poly(resample_poly(y, 1, 2), 2, 1)[: len(audio)]
        mu = 255.0
        peak = np.max(np.abs(y)) + 1e-9
        q = np.sign(y / peak) * np.log1p(mu * np.abs(y / peak)) / np.log1p(mu)
        q = np.round(q * 127) / 127
        y = peak * np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu
    else:  # laptop microphone
        hp = butter(2, rng.uniform(120, 300), btype="high", fs=SAMPLE_RATE, output="sos")
        lp = butter(2, rng.uniform(5000, 7500), btype="low", fs=SAMPLE_RATE, output="sos")
        f0 = rng.uniform(1500, 4000)
        pk = butter(2, [f0 * 0.8, f0 * 1.2], btype="band", fs=SAMPLE_RATE, output="sos")
        y = sosfilt(lp, sosfilt(hp, audio))
        y = y + rng.uniform(0.3, 0.8) * sosfilt(pk, y)
    return np.asarray(y, np.float32)


def noise(audio, rng: np.random.Generator, snr_db: float, pink: bool):
    n = rng.normal(0, 1, len(audio))
    if pink:
        spec = np.fft.rfft(n)
        f = np.fft.rfftfreq(len(n))
        spec[1:] /= np.sqrt(f[1:] / f[1])
        n = np.fft.irfft(spec, len(n))
    p_sig = np.mean(audio ** 2) + 1e-12
    n *= np.sqrt(p_sig / (np.mean(n ** 2) + 1e-12) / 10 ** (snr_db / 10))
    return (audio + n).astype(np.float32)


def loudness(audio, rms_dbfs: float):
    rms = np.sqrt(np.mean(audio ** 2)) + 1e-9
    y = audio * (10 ** (rms_dbfs / 20) / rms)
    peak = np.max(np.abs(y))
    if peak > 0.99:
        y *= 0.99 / peak
    return y.astype(np.float32)


def augment(audio: np.ndarray, phones: list, rng: np.random.Generator, enabled: bool = True):
    """Random augmentation chain. Returns (audio, phones, description dict)."""
    desc = {}
    y = np.asarray(audio, np.float32)
    n_in = len(y)
    if enabled:
        if rng.random() < PROBABILITIES["tempo"]:
            desc["tempo"] = round(float(rng.uniform(0.85, 1.2)), 3)
            y = tempo(y, desc["tempo"])
        if rng.random() < PROBABILITIES["pitch"]:
            desc["pitch_cents"] = round(float(rng.uniform(-350, 350)), 1)
            y = pitch(y, desc["pitch_cents"])
        elif rng.random() < PROBABILITIES["formant"]:
            desc["formant_ratio"] = round(float(rng.uniform(0.88, 1.14)), 3)
            y = formant(y, desc["formant_ratio"])
        if rng.random() < PROBABILITIES["reverb"]:
            desc["reverb_rt60"] = round(float(rng.uniform(0.15, 0.6)), 3)
            wet = float(rng.uniform(0.2, 0.7))
            y = reverb(y, rng, desc["reverb_rt60"], wet)
        if rng.random() < PROBABILITIES["band"]:
            desc["band"] = "telephone" if rng.random() < 0.5 else "laptop"
            y = band(y, desc["band"], rng)
        if rng.random() < PROBABILITIES["noise"]:
            desc["noise_snr_db"] = round(float(rng.uniform(5, 35)), 1)
            pink = bool(rng.random() < 0.5)
            desc["noise"] = "pink" if pink else "white"
            y = noise(y, rng, desc["noise_snr_db"], pink)
    desc["rms_dbfs"] = round(float(rng.uniform(-32, -14)), 1)
    y = loudness(y, desc["rms_dbfs"])
    stretch = len(y) / max(n_in, 1)
    if abs(stretch - 1) > 1e-6:
        phones = [Phone(p.start * stretch, p.end * stretch, p.ipa) for p in phones]
        phones[-1].end = len(y) / SAMPLE_RATE
    return y, phones, desc
