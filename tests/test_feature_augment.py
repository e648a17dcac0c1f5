"""Training-crop augmentation in feature space (core/corpus/feature_augment.py) and the non-speech
sounds whose target is the rest pose (core/corpus/non_speech.py)."""
import numpy as np
import pytest
import torch

from core.corpus import non_speech
from core.corpus.feature_augment import FeatureAugment, mel_warp_matrix
from core.encoders.mel import log_mel


def _tone(hz, seconds=1.0):
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.1 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.mark.parametrize("alpha", [0.9, 1.1])
def test_mel_warp_moves_a_tone_as_a_longer_or_shorter_vocal_tract_would(alpha):
    """Warping the log-mel frames of a 1 kHz tone by alpha puts its peak where a tone at
    alpha kHz has it (within one band), and alpha = 1 changes nothing."""
    warped = log_mel(_tone(1000.0)) @ mel_warp_matrix(alpha).numpy().T
    target = log_mel(_tone(1000.0 * alpha))
    assert abs(int(np.argmax(warped.mean(0))) - int(np.argmax(target.mean(0)))) <= 1
    assert int(np.argmax(warped.mean(0))) != int(np.argmax(log_mel(_tone(1000.0)).mean(0)))
    np.testing.assert_allclose(mel_warp_matrix(1.0).numpy(), np.eye(80), atol=1e-6)


def test_non_speech_crops_target_the_rest_pose():
    rng = np.random.default_rng(0)
    feats = torch.randn(64, 151, 80)
    target = torch.randn(64, 90, 68, 3)
    codes = torch.rand(64, 90, 5)
    bank = [np.full((200, 80), 7.0, np.float16)]
    f, t, c = FeatureAugment(non_speech=0.5)(feats, target, codes, torch.zeros(80), torch.ones(80), rng, bank)
    swapped = (f == 7.0).all(dim=(1, 2))
    assert 10 < int(swapped.sum()) < 54                            # about half the crops
    assert (t[swapped] == 0).all() and (c[swapped] == 0).all()     # rest pose, neutral codes
    assert torch.equal(t[~swapped], target[~swapped]) and torch.equal(f[~swapped], feats[~swapped])
    assert not (target == 0).all()                                 # the caller's batch is not changed


def test_augmentation_off_changes_nothing():
    feats, target, codes = torch.randn(4, 20, 80), torch.randn(4, 10, 68, 3), torch.rand(4, 10, 5)
    f, t, c = FeatureAugment()(feats, target, codes, torch.zeros(80), torch.ones(80), np.random.default_rng(0))
    assert f is feats and t is target and c is codes


def test_non_speech_bank_is_reproducible_steady_and_at_speech_level():
    a, b = non_speech.bank(8, 2.0, seed=3), non_speech.bank(8, 2.0, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    for i, y in enumerate(a):
        assert y.dtype == np.float32 and len(y) == 32000 and np.abs(y).max() < 1.0
        rms_db = 20 * np.log10(np.sqrt(np.mean(y ** 2)))
        assert -33 < rms_db < -13, (non_speech.KINDS[i % 4], rms_db)
    # steady: the 100 ms level of a continuous kind varies by a few dB (speech: 20-40 dB)
    for y in (a[0], a[2], a[3]):                                    # carriers, hum, noise
        level = 10 * np.log10(np.mean(y.reshape(-1, 1600) ** 2, axis=1))
        assert level.max() - level.min() < 6.0


def test_gsm_round_trip_is_a_telephone_codec():
    """core.corpus.augment.gsm (the --codec-share augmentation): same length, the same result every
    time, nothing left above the 4 kHz telephone band, and the speech band kept but not bit-exact."""
    from core.corpus import augment
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    audio = (0.1 * np.sin(2 * np.pi * 600 * t) + 0.05 * np.sin(2 * np.pi * 6000 * t)
             + 0.01 * rng.normal(size=t.size)).astype(np.float32)
    coded = augment.gsm(audio)
    assert coded.shape == audio.shape and coded.dtype == np.float32
    np.testing.assert_array_equal(coded, augment.gsm(audio))
    spectrum = lambda x: np.abs(np.fft.rfft(x[2000:-2000]))      # noqa: E731  (Hz = bin / 0.75 s)
    before, after = spectrum(audio), spectrum(coded)
    tone, high = slice(int(0.75 * 590), int(0.75 * 610)), slice(int(0.75 * 5900), int(0.75 * 6100))
    assert after[tone].max() > 0.5 * before[tone].max()
    assert after[high].max() < 0.01 * before[high].max()
    assert not np.allclose(coded, audio, atol=1e-3)
