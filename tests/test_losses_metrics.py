"""Every loss and metric against values computed by hand on tiny inputs."""
import math

import numpy as np
import pytest
import torch

from core import losses, metrics


def _s2l_pair():
    pred = torch.zeros(1, 2, 68, 3)
    target = torch.zeros(1, 2, 68, 3)
    pred[0, 1, 50] = torch.tensor([3.0, 0.0, 0.0])    # a lip point, frame 1
    target[0, 1, 50] = torch.tensor([0.0, 4.0, 0.0])
    pred[0, 0, 20] = torch.tensor([1.0, 0.0, 0.0])    # a brow point, frame 0
    target[0, 0, 20] = torch.tensor([1.0, 0.0, 0.0])
    return pred, target


def test_reconstruction_and_mouth_losses():
    pred, target = _s2l_pair()
    # Only landmark 50 in frame 1 differs: squared error 3^2 + 4^2 = 25 over 2*68*3 values.
    assert losses.reconstruction_loss(pred, target).item() == pytest.approx(25 / (2 * 68 * 3))
    # Mouth set = 8 jaw + 20 lip landmarks = 84 coordinates per frame, as in the paper's code.
    assert losses.mouth_loss(pred, target).item() == pytest.approx(25 / (2 * 84))


def test_velocity_loss():
    pred, target = _s2l_pair()
    # One step (frame 0 -> 1); motion differs only at landmark 50: (3,0,0) vs (0,4,0).
    assert losses.velocity_loss(pred, target).item() == pytest.approx(25 / (1 * 68 * 3))


def test_cosine_loss():
    pred, target = _s2l_pair()
    # 136 vectors: lm50 frame1 orthogonal (1 - 0 = 1), lm20 frame0 parallel (0),
    # the other 134 are zero vectors (cosine 0 by convention -> 1 each).
    assert losses.cosine_loss(pred, target).item() == pytest.approx((1 + 0 + 134) / 136)
    a = torch.tensor([[1.0, 0, 0], [0, 2.0, 0]])
    b = torch.tensor([[-1.0, 0, 0], [0, 1.0, 1.0]])
    assert losses.cosine_loss(a, b).item() == pytest.approx(((1 + 1) + (1 - 1 / math.sqrt(2))) / 2)


def test_s2l_total_uses_paper_lambdas():
    pred, target = _s2l_pair()
    total, parts = losses.s2l_loss(pred, target)
    expected = 0.1 * parts["rec"] + 1.0 * parts["mouth"] + 1e-4 * parts["cosine"] + 10.0 * parts["velocity"]
    assert total.item() == pytest.approx(expected, rel=1e-6)


def test_objectives_see_millimetres_by_default():
    # Metres in, millimetres inside: squared terms grow by 1e6, the cosine term is scale-free.
    pred, target = _s2l_pair()
    pred, target = pred * 1e-3, target * 1e-3
    _, in_mm = losses.s2l_loss(pred, target)
    _, in_m = losses.s2l_loss(pred, target, unit=1.0)
    assert in_mm["mouth"] == pytest.approx(25 / (2 * 84), rel=1e-5)
    assert in_m["mouth"] == pytest.approx(in_mm["mouth"] * 1e-6, rel=1e-5)
    assert in_m["cosine"] == pytest.approx(in_mm["cosine"], rel=1e-6)
    w = torch.full((5023,), 1 / 5023)
    dense_pred, dense_target = torch.zeros(1, 5023, 3), torch.zeros(1, 5023, 3)
    dense_target[0, 7] = torch.tensor([0.0, 2e-3, 0.0])
    _, parts = losses.s2d_loss(dense_pred, dense_target, w)
    assert parts["rec"] == pytest.approx(4.0 / (5023 * 3), rel=1e-5)


def test_weighted_loss_and_vertex_weights(topology):
    w = losses.vertex_weights()
    assert w.shape == (5023,) and w.sum() == pytest.approx(1.0, rel=1e-5)
    d = np.maximum(topology.landmark_distances(), 1e-3)
    # w proportional to 1/d: a vertex twice as far has half the weight.
    i, j = np.argsort(d)[[1000, 4000]]
    assert w[i] / w[j] == pytest.approx(d[j] / d[i], rel=1e-4)
    pred = torch.zeros(1, 5023, 3)
    target = torch.zeros(1, 5023, 3)
    target[0, i] = torch.tensor([0.0, 2.0, 0.0])
    # sum_v w_v * err^2 per coordinate, mean over (batch, 3 coordinates): only y is off.
    got = losses.weighted_loss(pred, target, torch.from_numpy(w)).item()
    assert got == pytest.approx(w[i] * 4.0 / 3.0, rel=1e-5)
    total, parts = losses.s2d_loss(pred, target, torch.from_numpy(w))
    assert total.item() == pytest.approx(0.1 * parts["rec"] + 1e-4 * parts["cosine"] + parts["weighted"], rel=1e-6)


def test_metrics_by_hand():
    pred = np.zeros((2, 68, 3))
    target = np.zeros((2, 68, 3))
    target[0, 50] = [0, 0.003, 0]        # frame 0: lip error 3 mm at one point
    target[1, 60] = [0.004, 0, 0]        # frame 1: lip error 4 mm
    target[1, 61] = [0, 0.001, 0]
    pred[1, 61] = [0, 0.001, 0]          # this one is right
    m = metrics.evaluate(pred, target)
    assert m["LE"] == pytest.approx((0.003 + 0.004) / 2)
    assert m["DE"] == pytest.approx((0.003 + 0.004) / (2 * 68))
    assert m["LVE"] == pytest.approx((0.003 ** 2 + 0.004 ** 2) / 2)
    assert m["lve_mm"] == pytest.approx(math.sqrt((9 + 16) / 2) , rel=1e-9)
    # Angle: only landmark 61 in frame 1 has both vectors non-zero, and they agree.
    assert m["DAE"] == pytest.approx(0.0, abs=1e-6)
    pred[1, 61] = [0.001, 0, 0]          # now 90 degrees apart
    assert metrics.evaluate(pred, target)["DAE"] == pytest.approx(90.0)
    assert math.isnan(metrics.evaluate(np.zeros_like(target), target)["DAE"])  # static: undefined


def test_metrics_on_dense_use_lip_region(topology):
    lips = topology.regions["lips"]
    pred = np.zeros((1, 5023, 3))
    target = np.zeros((1, 5023, 3))
    target[0, lips[5]] = [0, 0, 0.002]
    target[0, topology.regions["upper_face"][0]] = [0, 0, 0.010]  # not a lip vertex
    m = metrics.evaluate(pred, target)
    assert m["LE"] == pytest.approx(0.002)
    assert m["DE"] == pytest.approx(0.012 / 5023)
    with pytest.raises(ValueError):
        metrics.evaluate(pred, target[:, :100])


def test_one_call_gives_landmark_and_dense_tables(topology):
    rng = np.random.default_rng(0)
    target = rng.normal(scale=0.001, size=(4, 5023, 3))
    pred = target * 0.5
    table = metrics.evaluate_dense_and_landmarks(pred, target)
    lmk_t = topology.landmarks(target)
    assert table["landmarks"]["DE"] == pytest.approx(np.linalg.norm(0.5 * lmk_t, axis=-1).mean())
    assert table["dense"]["DE"] == pytest.approx(np.linalg.norm(0.5 * target, axis=-1).mean())
    assert table["dense"]["DAE"] == pytest.approx(0.0, abs=1e-5)  # same directions


def test_lip_gap_loss_prices_closures_and_open_peaks_by_their_weights():
    from core.losses import lip_gap_loss, s2l_loss
    target = torch.zeros(1, 3, 68, 3)
    target[0, 0, 66, 1] = 0.0            # frame 0: closed (gap 0)
    target[0, 1, 66, 1] = -3.0           # frame 1: gap 3 (mid)
    target[0, 2, 66, 1] = -10.0          # frame 2: gap 10 (an open vowel's peak)
    pred = target.clone()
    pred[..., 66, 1] += 1.0              # every frame's gap 1 too small (in the loss unit)
    plain = lip_gap_loss(pred, target, closure_weight=1.0, open_weight=1.0)
    assert float(plain) == pytest.approx(1.0)
    assert float(lip_gap_loss(pred, target, closure_weight=4.0)) == pytest.approx((4 + 1 + 1) / 3)
    assert float(lip_gap_loss(pred, target, closure_weight=1.0, open_weight=5.0, open_above=6.0)) == \
        pytest.approx((1 + 1 + 5) / 3)
    # s2l_loss takes the thresholds in mm whatever unit the losses see
    mm, m = 1e-3, 1.0
    _, parts_mm = s2l_loss(pred * mm, target * mm, gap=1.0, gap_weights={"closure_weight": 1.0, "open_weight": 5.0})
    _, parts_m = s2l_loss(pred * mm, target * mm, gap=1.0, unit=m,
                          gap_weights={"closure_weight": 1.0, "open_weight": 5.0})
    assert parts_mm["gap"] == pytest.approx(7 / 3)
    assert parts_m["gap"] == pytest.approx(7 / 3 * mm ** 2)


def test_lip_gap_loss_weights_closures_inside_speech_apart_from_long_rests():
    """A closure between open frames (a p/b/m seal) takes the brief-closure weight; the frames of
    a long rest, far from any opening, keep the closure weight."""
    from core.losses import lip_gap_loss
    gaps = [0.0] * 10 + [4.0, 4.0, 0.0, 0.0, 4.0, 4.0]      # a rest, then an opening with a seal inside
    target = torch.zeros(1, len(gaps), 68, 3)
    target[0, :, 66, 1] = -torch.tensor(gaps)
    pred = target.clone()
    pred[..., 66, 1] -= 1.0                                  # every frame's gap 1 too wide
    n = len(gaps)
    same = lip_gap_loss(pred, target, closure_weight=2.0, brief_closure_weight=2.0, brief_frames=2)
    assert float(same) == pytest.approx((12 * 2 + 4) / n)
    brief = lip_gap_loss(pred, target, closure_weight=2.0, brief_closure_weight=10.0, brief_frames=2)
    # the two seal frames and the rest's last two frames (within 2 frames of the opening) are brief
    assert float(brief) == pytest.approx((8 * 2 + 4 * 10 + 4) / n)


def test_lip_gap_false_closure_term_prices_lips_shut_where_the_target_holds_them_open():
    """The false-closure term is zero where the prediction keeps the lips 2 mm or more apart, or
    where the target itself closes within a frame; it grows with how far a prediction held open
    by the target falls under 2 mm."""
    from core.losses import lip_gap_loss
    gaps = [4.0, 4.0, 4.0, 4.0, 4.0, 0.0, 4.0]              # open, then a seal at frame 5
    target = torch.zeros(1, len(gaps), 68, 3)
    target[0, :, 66, 1] = -torch.tensor(gaps)
    n = len(gaps)
    wide = target.clone()                                    # 2.5 mm where the target has 4: not a closure
    wide[0, 1, 66, 1] = -2.5
    assert float(lip_gap_loss(wide, target, closure_weight=1.0, false_closure_weight=30.0)) == \
        pytest.approx(float(lip_gap_loss(wide, target, closure_weight=1.0)))
    near_seal = target.clone()                               # shut a frame early, beside the target's seal
    near_seal[0, 4, 66, 1] = 0.0
    assert float(lip_gap_loss(near_seal, target, closure_weight=1.0, false_closure_weight=30.0)) == \
        pytest.approx(16 / n)
    shut = target.clone()                                    # shut at frame 2, held open on both sides
    shut[0, 2, 66, 1] = -0.5
    base = float(lip_gap_loss(shut, target, closure_weight=1.0))
    assert base == pytest.approx(3.5 ** 2 / n)
    # 1.5 mm under the 2 mm floor, on one of n frames
    assert float(lip_gap_loss(shut, target, closure_weight=1.0, false_closure_weight=30.0)) == \
        pytest.approx(base + 30 * 1.5 ** 2 / n)


def test_lip_gap_seal_term_prices_a_seal_missed_by_more_than_a_frame():
    """The seal term is zero when the predicted gap reaches the closure within one frame of the
    target's seal, and grows with how far the nearest predicted gap stays open when it does not."""
    from core.losses import lip_gap_loss
    gaps = [4.0, 4.0, 4.0, 0.0, 4.0, 4.0, 4.0]              # one seal frame between open vowels
    target = torch.zeros(1, len(gaps), 68, 3)
    target[0, :, 66, 1] = -torch.tensor(gaps)
    n = len(gaps)
    late = target.clone()                                    # sealed one frame late: 4 mm off at 3 and 4
    late[0, 3, 66, 1], late[0, 4, 66, 1] = -4.0, 0.0
    base = float(lip_gap_loss(late, target, closure_weight=1.0))
    assert base == pytest.approx(2 * 16 / n)
    assert float(lip_gap_loss(late, target, closure_weight=1.0, seal_weight=50.0)) == pytest.approx(base)
    hedged = target.clone()                                  # never sealed: 2 mm open around the seal
    hedged[0, 2:5, 66, 1] = -2.0
    base = float(lip_gap_loss(hedged, target, closure_weight=1.0))
    assert base == pytest.approx((4 + 4 + 4) / n)
    # the seal frame's nearest predicted gap (frames 2-4) is 2 mm: 50 * 2^2 on one of n frames
    assert float(lip_gap_loss(hedged, target, closure_weight=1.0, seal_weight=50.0)) == pytest.approx(base + 50 * 4 / n)
