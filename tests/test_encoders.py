import numpy as np
import pytest

from core import audio
from core.encoders import get_encoder
from core.encoders.mel import log_mel, mel_filterbank
from core.errors import EncoderUnavailable


def test_hama_gives_50hz_log_posteriors(speech16k):
    enc = get_encoder("hama")
    f = enc.features(speech16k)
    assert f.shape == (len(speech16k) // 320, 191)
    np.testing.assert_allclose(np.exp(f).sum(axis=1), 1.0, atol=1e-3)


def test_hama_chunks_long_audio_consistently(speech16k):
    """hama returns at most 30 s per call, so long clips are chunked; the recogniser looks at
    context, so chunked posteriors differ slightly from one pass - keep that small."""
    clip = np.tile(speech16k, 4)[: 16000 * 25]
    enc = get_encoder("hama")
    whole = enc.frames(clip)[: len(clip) // 320]
    enc.chunk_seconds, enc.context_seconds = 10.0, 3.0
    chunked = enc.features(clip)
    assert chunked.shape == whole.shape
    assert (whole.argmax(1) == chunked.argmax(1)).mean() > 0.97
    assert np.abs(np.exp(whole) - np.exp(chunked)).sum(1).mean() / 2 < 0.03


def test_loudness_normalisation_makes_hama_level_independent(speech16k):
    enc = get_encoder("hama")
    ref = enc.frames(audio.normalise_loudness(speech16k))
    quiet = enc.frames(audio.normalise_loudness(speech16k * 0.05))
    assert (ref.argmax(1) == quiet.argmax(1)).mean() > 0.99
    assert audio.is_silent(np.zeros(16000)) and not audio.is_silent(speech16k)


def test_mel_features(speech16k):
    fb = mel_filterbank()
    assert fb.shape == (80, 257) and (fb >= 0).all()
    f = get_encoder("mel").features(speech16k)
    assert f.shape == (len(speech16k) // 320, 80) and np.isfinite(f).all()
    # A 1 kHz tone lights up the band around 1 kHz, centred in time on its frames.
    t = np.arange(16000) / 16000
    tone = log_mel(np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    centres = np.argmax(fb, axis=1) * 16000 / 512
    assert abs(centres[np.argmax(tone[25])] - 1000) < 80


def test_wav2vec2_loads_only_from_a_local_folder(tmp_path, speech16k):
    from transformers import Wav2Vec2Config, Wav2Vec2Model
    with pytest.raises(EncoderUnavailable, match="needs a local folder"):
        get_encoder("wav2vec2")
    with pytest.raises(EncoderUnavailable, match="config.json is missing"):
        get_encoder("wav2vec2", model_dir=tmp_path / "absent")
    # A tiny randomly initialised wav2vec 2.0 saved locally stands in for the real weights.
    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            conv_dim=(16, 16, 16, 16, 16, 16, 16), num_conv_pos_embeddings=16,
                            num_conv_pos_embedding_groups=4)
    Wav2Vec2Model(config).save_pretrained(tmp_path / "w2v")
    enc = get_encoder("wav2vec2", model_dir=tmp_path / "w2v")
    f = enc.features(speech16k[:32000])
    assert f.shape == (100, 32) and np.isfinite(f).all()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    with pytest.raises(EncoderUnavailable, match="Cannot load"):
        get_encoder("wav2vec2", model_dir=tmp_path / "broken")


def test_unknown_encoder():
    with pytest.raises(ValueError, match="Unknown speech encoder"):
        get_encoder("whisper")


def test_numpy_hama_equals_hamas_own_engine(speech16k):
    """hama_conformer (numpy, the default) against hama's native library on real speech, on the
    posteriors and on what the shipped S2L network makes of them."""
    from core import weights
    from core.numpy_runtime import NumpyS2L
    try:
        native = get_encoder("hama", engine="native")
    except EncoderUnavailable as exc:
        pytest.skip(str(exc))
    ours = get_encoder("hama")
    clip = audio.normalise_loudness(speech16k)
    a, b = ours.features(clip), native.features(clip)
    assert a.shape == b.shape == (len(clip) // 320, 191)
    diff = np.abs(a - b)
    assert diff.max() < 0.1 and diff.mean() < 2e-3, (diff.max(), diff.mean())
    assert (a.argmax(1) == b.argmax(1)).mean() > 0.99
    directory = weights.DEFAULT_DIR
    if weights.has_networks(directory, "s2l_hama"):
        config, state, _ = weights.load_network(directory, "s2l_hama", "s2l", weights.read_manifest(directory))
        s2l = NumpyS2L(config, state)
        la, lb = s2l(a, 200, 30.0), s2l(b, 200, 30.0)
        # Landmark motion is millimetres; the engines may differ by a small fraction of it.
        assert np.abs(la - lb).max() < 0.05 * np.abs(lb).max(), (np.abs(la - lb).max(), np.abs(lb).max())


def test_hama_package_reader_rejects_other_files(tmp_path):
    from core.encoders.hama_conformer import HamaConformer, read_package
    bad = tmp_path / "x.hama"
    bad.write_bytes(b"not a hama file")
    with pytest.raises(EncoderUnavailable, match="not a hama weights file"):
        read_package(bad)
    with pytest.raises(EncoderUnavailable, match="not the layout"):
        HamaConformer(tensors={})
