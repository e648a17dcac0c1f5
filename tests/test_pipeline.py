import json

import numpy as np
import pytest

from core import flame, weights
from core.errors import Cancelled, TopologyError, WeightsError, AudioError
from core.numpy_runtime import random_state, s2d_parameter_shapes, s2l_parameter_shapes
from core.pipeline import Animator
from tests.conftest import SAMPLE_AUDIO, rotation


@pytest.fixture(scope="module")
def animator():
    return Animator.load(weights_dir="/nonexistent-weights", encoder="hama", allow_random=True)


def test_random_weights_are_reported_as_such(animator):
    assert not animator.trained
    assert "RANDOM" in animator.describe()
    with pytest.raises(WeightsError, match="No trained weights"):
        Animator.load(weights_dir="/nonexistent-weights", encoder="mel")


def test_animate_sample(animator, topology, speech16k):
    anim = animator.animate(SAMPLE_AUDIO, topology.template, fps=30)
    assert anim.num_frames == int(np.ceil(len(speech16k) / 16000 * 30))
    assert anim.vertices.shape == (anim.num_frames, 5023, 3) and anim.vertices.dtype == np.float32
    np.testing.assert_allclose(anim.vertices - anim.neutral, anim.displacements, atol=1e-7)
    np.testing.assert_allclose(anim.landmarks, flame.landmarks(anim.vertices), atol=1e-6)


def test_numpy_and_torch_back_ends_agree(topology, speech16k):
    # The shipped (trained) weights, so the outputs have the size users see; relative bound.
    a = Animator.load(encoder="mel", backend="numpy")
    b = Animator.load(encoder="mel", backend="torch")
    assert a.trained and b.trained
    clip = (speech16k[:32000], 16000)
    da = a.animate(clip, topology.template, fps=25).displacements
    db = b.animate(clip, topology.template, fps=25).displacements
    assert np.abs(db).max() > 1e-3  # the mouth opens by millimetres
    assert np.abs(da - db).max() < 1e-4 * np.abs(db).max(), np.abs(da - db).max() / np.abs(db).max()


def test_chunked_equals_whole(topology, speech16k):
    """Long clips run in chunks with context; the result must match one whole pass."""
    clip = np.tile(speech16k, 2)  # ~14 s
    whole = Animator.load(weights_dir="/nonexistent-weights", encoder="mel", allow_random=True)
    chunked = Animator.load(weights_dir="/nonexistent-weights", encoder="mel", allow_random=True)
    chunked.chunk_seconds, chunked.context_seconds = 3.0, 2.0
    a = whole.landmark_displacements(clip, 30.0)
    b = chunked.landmark_displacements(clip, 30.0)
    assert a.shape == b.shape
    scale = np.abs(a).max()
    assert np.abs(a - b).max() < 1e-3 * scale, np.abs(a - b).max() / scale


def test_same_motion_on_any_head_pose(animator, topology, speech16k):
    clip = (speech16k[:16000], 16000)
    base = animator.animate(clip, topology.template, fps=24).displacements
    r = rotation((1, 0.2, 0), 90)  # Z-up, tilted, in centimetres, moved
    user = 100.0 * topology.template.astype(np.float64) @ r.T + [10.0, -3.0, 50.0]
    moved = animator.animate(clip, user, fps=24).displacements
    expected = 100.0 * base.astype(np.float64) @ r.T
    assert np.abs(moved - expected).max() <= 1e-5 * np.abs(expected).max()


def test_intensity_progress_cancel_and_many(animator, topology, speech16k):
    clip = (speech16k[:8000], 16000)
    one = animator.animate(clip, topology.template, fps=30).displacements
    half = animator.animate(clip, topology.template, fps=30, intensity=0.5).displacements
    np.testing.assert_allclose(half, 0.5 * one, atol=1e-7)
    seen = []
    animator.animate(clip, topology.template, fps=60, progress=seen.append)
    assert seen and seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
    with pytest.raises(Cancelled):
        animator.animate(clip, topology.template, fps=30, should_cancel=lambda: True)
    many = animator.animate_many([clip, (speech16k[:4000], 16000)], topology.template, fps=30)
    assert [m.num_frames for m in many] == [15, 8]


def test_pipeline_errors(animator, topology):
    with pytest.raises(TopologyError, match="5022 vertices"):
        animator.animate((np.zeros(1600), 16000), topology.template[:-1], fps=30)
    with pytest.raises(ValueError, match="Frame rate"):
        animator.animate((np.zeros(1600), 16000), topology.template, fps=0)
    with pytest.raises(AudioError):
        animator.animate((np.zeros(0), 16000), topology.template, fps=30)


def test_stream_bounds_memory_on_long_audio(topology):
    """A long clip streams in blocks: no block is larger than the S2D batch."""
    a = Animator.load(weights_dir="/nonexistent-weights", encoder="mel", allow_random=True)
    a.chunk_seconds = 10.0
    clip = np.random.default_rng(0).normal(scale=0.05, size=16000 * 45).astype(np.float32)
    frames = 0
    for start, block in a.stream((clip, 16000), topology.template, fps=10):
        assert start == frames and len(block) <= a.s2d_batch
        frames += len(block)
    assert frames == 450


def test_weights_round_trip_and_failures(tmp_path, topology, speech16k):
    cfg = dict(encoder="mel", input_dim=80, frontend_channels=64)
    s2l_state = random_state(s2l_parameter_shapes(cfg), 11)
    s2d_state = random_state(s2d_parameter_shapes({}), 12)
    weights.save_network(tmp_path, "s2l_mel", "s2l", cfg, s2l_state, front_end="mel", trained=False,
                         training_data="none (test)")
    weights.save_network(tmp_path, "s2d", "s2d", {}, s2d_state, front_end="none", trained=False,
                         training_data="none (test)")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert set(manifest["networks"]) == {"s2l_mel", "s2d"}
    assert manifest["networks"]["s2d"]["sha256"] == weights.file_sha256(tmp_path / "s2d.npz")
    animator = Animator.load(tmp_path, encoder="mel")
    assert not animator.trained and str(tmp_path) in animator.describe()
    reference = Animator.load("/nonexistent-weights", encoder="mel", allow_random=True, seed=11)
    clip = (speech16k[:8000], 16000)
    # Same parameters through the file: same S2L output.
    np.testing.assert_allclose(animator.landmark_displacements(clip[0], 30),
                               reference.landmark_displacements(clip[0], 30), atol=1e-6)

    data = bytearray((tmp_path / "s2d.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "s2d.npz").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupt"):
        Animator.load(tmp_path, encoder="mel")
    (tmp_path / "s2d.npz").unlink()
    with pytest.raises(WeightsError, match="missing"):
        Animator.load(tmp_path, encoder="mel")
    manifest["networks"]["s2l_mel"]["topology_sha256"] = "0" * 64
    manifest["networks"]["s2l_mel"]["kind"] = "s2l"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match="another mesh topology"):
        weights.load_network(tmp_path, "s2l_mel", "s2l")
    with pytest.raises(WeightsError, match="expected 's2d'"):
        weights.load_network(tmp_path, "s2l_mel", "s2d")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(WeightsError, match="unreadable"):
        Animator.load(tmp_path, encoder="mel")


def test_bundled_weights_are_named_as_such():
    # Reports written by the tools then hold no machine-specific path (no skip: weights ship).
    assert Animator.load(encoder="mel").describe() == "encoder=mel, back end=numpy, trained: the bundled weights"
