import wave

import numpy as np
import pytest
import soundfile

from core import audio
from core.errors import AudioError


def _tone(rate, seconds=1.0, freq=440.0, channels=1):
    t = np.arange(int(rate * seconds)) / rate
    x = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 44100, 48000, 96000])
@pytest.mark.parametrize("channels", [1, 2])
def test_any_rate_and_channels_give_16k_mono(tmp_path, rate, channels):
    path = tmp_path / f"tone_{rate}_{channels}.wav"
    soundfile.write(path, _tone(rate, channels=channels), rate, subtype="PCM_16")
    x = audio.load_audio(path)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - 16000) <= 1
    # The 440 Hz tone survives with its amplitude (RMS 0.5 / sqrt 2).
    assert abs(np.sqrt(np.mean(x[800:-800] ** 2)) - 0.5 / np.sqrt(2)) < 0.01
    spectrum = np.abs(np.fft.rfft(x[:16000]))
    assert abs(np.argmax(spectrum) - 440) <= 1


@pytest.mark.parametrize("fmt, subtype", [("WAV", "PCM_24"), ("WAV", "FLOAT"), ("FLAC", "PCM_16"), ("OGG", "VORBIS")])
def test_formats(tmp_path, fmt, subtype):
    path = tmp_path / f"tone.{fmt.lower()}"
    soundfile.write(path, _tone(44100, channels=2), 44100, format=fmt, subtype=subtype)
    x = audio.load_audio(path)
    assert abs(len(x) - 16000) <= 2
    assert abs(np.sqrt(np.mean(x[800:-800] ** 2)) - 0.354) < 0.02


def test_resampler_is_anti_aliased():
    """A 12 kHz tone at 44.1 kHz lies above the new Nyquist (8 kHz): it must vanish, not fold."""
    x = audio.resample(_tone(44100, freq=12000), 44100, 16000)
    assert np.sqrt(np.mean(x[1000:-1000] ** 2)) < 1e-3
    y = audio.resample(_tone(44100, freq=7000), 44100, 16000)
    assert np.sqrt(np.mean(y[1000:-1000] ** 2)) > 0.34


@pytest.mark.parametrize("rate_in", [22050, 44100, 8000, 11025, 16001])
def test_resampler_equals_the_direct_sum(rate_in):
    """The blocked BLAS form (and, for 16001 Hz, the per-phase form) against the definition:
    output k = sum over taps t of x[floor(k r) + t] * kaiser-windowed sinc(frac(k r) - t)."""
    from fractions import Fraction
    x = np.random.default_rng(rate_in).normal(scale=0.1, size=700 + rate_in // 100).astype(np.float32)
    ours = audio.resample(x, rate_in, 16000)
    ratio = Fraction(16000, rate_in)
    up, down = ratio.numerator, ratio.denominator
    cutoff = min(1.0, up / down)
    half = int(np.ceil(32 / cutoff))
    assert len(ours) == int(np.ceil(len(x) * up / down))
    ref = np.zeros(len(ours))
    for k in range(len(ours)):
        base, p = divmod(k * down, up)
        t = np.arange(-half, half + 1) - p / up
        window = np.i0(8.0 * np.sqrt(np.clip(1.0 - (t / (half + 1)) ** 2, 0.0, 1.0))) / np.i0(8.0)
        src = base + np.arange(-half, half + 1)
        ok = (src >= 0) & (src < len(x))
        ref[k] = np.dot(x[src[ok]].astype(np.float64), (cutoff * np.sinc(cutoff * t) * window)[ok])
    assert np.abs(ours - ref).max() < 1e-6


def test_wav_reader_without_soundfile(tmp_path, monkeypatch):
    """Stock Blender has no soundfile: the wave-module path must read PCM WAV the same way."""
    path = tmp_path / "t.wav"
    pcm = (_tone(22050, channels=2) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(2), fh.setsampwidth(2), fh.setframerate(22050)
        fh.writeframes(pcm.tobytes())
    with_sf = audio.load_audio(path)
    import builtins
    real_import = builtins.__import__

    def no_soundfile(name, *args, **kwargs):
        if name == "soundfile":
            raise ImportError("no soundfile in stock Blender")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_soundfile)
    without = audio.load_audio(path)
    np.testing.assert_allclose(without, with_sf, atol=1e-4)
    (tmp_path / "t.flac").write_bytes(b"fLaC")
    with pytest.raises(AudioError, match="only WAV"):
        audio.load_audio(tmp_path / "t.flac")


def test_arrays_and_errors(tmp_path):
    x = audio.load_audio(_tone(8000), 8000)
    assert abs(len(x) - 16000) <= 1
    ints = (_tone(16000) * 32767).astype(np.int16)
    np.testing.assert_allclose(audio.load_audio(ints, 16000), _tone(16000), atol=1e-4)
    with pytest.raises(AudioError, match="without their sample rate"):
        audio.load_audio(_tone(8000))
    with pytest.raises(AudioError, match="not found"):
        audio.load_audio(tmp_path / "nope.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        audio.load_audio(tmp_path / "empty.wav")
    (tmp_path / "junk.wav").write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioError, match="Cannot read"):
        audio.load_audio(tmp_path / "junk.wav")
    with pytest.raises(AudioError, match="empty"):
        audio.load_audio(np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="NaN"):
        audio.load_audio(np.full(100, np.nan, np.float32), 16000)
