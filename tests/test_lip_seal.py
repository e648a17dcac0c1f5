"""The seal head: its labels and loss, its numpy runtime, and the pipeline's lip seal."""
import numpy as np
import pytest
import torch

from core import lip_aperture, lip_seal, losses
from core.numpy_runtime import NumpyS2L, random_state, s2l_parameter_shapes
from core.pipeline import Animator
from core.torch_runtime import TorchS2L


def test_seal_weights_leave_unsure_frames_and_close_confident_ones():
    logits = np.linspace(-8, 8, 161)
    w = lip_seal.seal_weights(logits)
    p = lip_seal.probability(logits)
    assert (w[p <= lip_seal.SEAL_FROM] == 0).all() and (w[p >= lip_seal.SEAL_FULL] == 1).all()
    assert (np.diff(w) >= 0).all() and ((w > 0) & (w < 1)).any()
    assert np.isfinite(lip_seal.probability(np.array([-1e4, 1e4]))).all()


def test_seal_labels_are_the_closures_inside_speech_not_the_pauses():
    # mm: a pause (long closure), speech, one p/b/m seal of two frames, speech
    gap = torch.tensor([[0.0] * 12 + [4.0] * 4 + [0.2, 0.1] + [5.0] * 4])
    label = losses.brief_closures(gap)
    expected = torch.zeros_like(gap)
    expected[0, 16:18] = 1.0
    expected[0, 7:12] = 1.0          # a pause's last five frames: the lips are sealing into speech
    assert torch.equal(label, expected)
    # the loss, on displacements in metres given in mm: confident right logits cost less than
    # confident wrong ones, and a seal missed costs positive_weight times a false alarm
    target = torch.zeros(1, gap.shape[1], 68, 3)
    target[0, :, 66, 1] = -gap[0]
    right = (label * 2 - 1) * 6.0
    assert losses.seal_detection_loss(right, target) < 0.01 < losses.seal_detection_loss(-right, target)
    miss = losses.seal_detection_loss(torch.full_like(gap, -6.0), target)     # "never a seal"
    alarm = losses.seal_detection_loss(torch.full_like(gap, 6.0), target)     # "always a seal"
    n_pos, n_neg = float(label.sum()), float((1 - label).sum())
    assert float(miss) / float(alarm) == pytest.approx(10.0 * n_pos / n_neg, rel=0.01)
    # s2l_loss adds it only for a network with a head, with its weight
    pred = target + 1e-4
    base, parts = losses.s2l_loss(pred, target)
    total, parts_seal = losses.s2l_loss(pred, target, seal=2.0, seal_logits=right)
    assert "seal" not in parts and float(total - base) == pytest.approx(2.0 * parts_seal["seal"], rel=1e-4)


def test_numpy_seal_head_equals_torch():
    config = dict(encoder="mel", input_dim=80, frontend_channels=32, seal_head=True)
    state = random_state(s2l_parameter_shapes(config), seed=5)
    feats = np.random.default_rng(0).normal(size=(173, 80)).astype(np.float32)
    lmk, seal = NumpyS2L(config, state)(feats, 104, 29.97, return_seal=True)
    lmk_t, seal_t = TorchS2L(config, state)(feats, 104, 29.97, return_seal=True)
    assert seal.shape == (104,) and np.abs(seal_t).max() > 1e-3
    np.testing.assert_allclose(seal, seal_t, atol=1e-5)
    np.testing.assert_allclose(lmk, lmk_t, atol=1e-7)
    # without return_seal a network with a head gives its displacements alone
    np.testing.assert_array_equal(NumpyS2L(config, state)(feats, 104, 29.97), lmk)


def _with_head(animator: Animator, bias: float) -> Animator:
    """The same networks plus a seal head that always says ``bias`` (a logit)."""
    config = {**animator.s2l.config, "seal_head": True}
    state = {**animator.s2l.p, "seal.weight": np.zeros((1, 2 * config["hidden_size"]), np.float32),
             "seal.bias": np.array([bias], np.float32)}
    return Animator(animator.encoder, NumpyS2L(config, state), animator.s2d, backend="numpy", trained=False,
                    source="test")


def test_the_animator_seals_the_lips_where_the_head_says(speech16k, topology):
    plain = Animator.load(encoder="hama")
    assert not plain.has_seal_head
    job = plain.prepare((speech16k[:16000 * 4], 16000), topology.template, 30)
    track = plain.landmark_track(job)
    assert lip_aperture.vertical_gap(track).max() > 2e-3          # the speech opens the mouth
    # a head that is sure there is no seal changes nothing
    np.testing.assert_array_equal(_with_head(plain, -20.0).landmark_track(job), track)
    # one sure of a seal everywhere takes every opening out and presses the lips PRESS past
    # closed, and keeps what is not opening
    sealing = _with_head(plain, 20.0)
    assert sealing.has_seal_head
    sealed = sealing.landmark_track(job)
    parted = lip_aperture.vertical_gap(track) >= 0
    np.testing.assert_allclose(lip_aperture.vertical_gap(sealed)[parted], -lip_seal.PRESS, atol=2e-6)
    np.testing.assert_array_equal(sealed[:, 17:48], track[:, 17:48])   # brows and eyes
    # lip_seal off: the network alone
    sealing.lip_seal = False
    np.testing.assert_array_equal(sealing.landmark_track(job), track)

