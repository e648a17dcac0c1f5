"""Emotion/style codes, regional intensities, the lip measures and S2L conditioning."""
import numpy as np
import pytest
import torch

from core import expression, flame, lip_aperture, regional
from core.numpy_runtime import NumpyS2L
from core.s2l import S2L, S2LConfig


def test_codes_hold_and_blend_between_keys():
    e = expression.parse("0:neutral, 2:happy:0.8, 4:angry", style=0.5)
    c = e.codes(180, 30.0)
    assert c.shape == (180, expression.CODE_DIM)
    np.testing.assert_allclose(c[:, -1], 0.5)                       # style on every frame
    np.testing.assert_allclose(c[30], [0, 0, 0, 0, 0.5])            # 1 s: neutral
    np.testing.assert_allclose(c[90], [0.8, 0, 0, 0, 0.5])          # 3 s: happy 0.8
    np.testing.assert_allclose(c[150], [0, 0, 1.0, 0, 0.5])         # 5 s: angry
    mid = c[60]                                                     # 2 s: half-way into happy
    assert 0.3 < mid[0] < 0.5
    assert expression.parse("sad:0.6").codes(3, 30)[0, 1] == pytest.approx(0.6)
    assert expression.parse("").is_neutral and not expression.parse("surprised").is_neutral


@pytest.mark.parametrize("text, fragment", [("furious", "Unknown emotion"), ("happy:1.5", "between 0 and 1"),
                                            ("happy:x:y", "expected"), ("nan:happy", "finite")])
def test_bad_expressions_say_what_is_wrong(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        expression.parse(text)


def test_regions_scale_each_region_only():
    rng = np.random.default_rng(0)
    d = rng.normal(0, 1e-3, (4, 68, 3))
    assert regional.scale(d, regional.Regions()) is d
    up = list(regional.UPPER_FACE)
    out = regional.scale(d, regional.Regions(upper_face=0.0))
    assert np.abs(out[:, up]).max() == 0 and np.array_equal(np.delete(out, up, 1), np.delete(d, up, 1))
    # with the lips off, the upper lip (no jaw share) stops; the chin keeps the jaw's motion
    out = regional.scale(d, regional.Regions(lips=0.0))
    assert np.abs(out[:, [50, 51, 52, 61, 62, 63]]).max() == 0
    np.testing.assert_allclose(out[:, 8], d[:, 8])
    out = regional.scale(d, regional.Regions(jaw=2.0, lips=1.0))
    np.testing.assert_allclose(out[:, 8], 2 * d[:, 8])
    np.testing.assert_allclose(out[:, 51], d[:, 51])
    with pytest.raises(ValueError, match="jaw intensity"):
        regional.Regions(jaw=float("inf"))


def test_lip_measures_on_the_mesh():
    topo = flame.load_topology()
    v = topo.template.astype(np.float64)
    assert lip_aperture.aperture(v) < 0.0005                       # lips touch at rest
    s = lip_aperture.lip_surfaces()
    opened = v.copy()
    opened[s.lower] -= [0, 0.010, 0]                               # drop the lower lip 10 mm:
    assert 0.004 < lip_aperture.aperture(opened) <= 0.010          # the lips overlap ~4 mm in height at rest
    both = lip_aperture.aperture(np.stack([v, opened]))
    assert both.shape == (2,) and both[0] < both[1]
    assert lip_aperture.lips_cross(v) and not lip_aperture.lips_cross(opened)


@pytest.mark.parametrize("up_mm, back_mm", [(1, 0), (3, 2), (5, 1)])
def test_lips_pressed_through_each_other_touch(up_mm, back_mm):
    # a seal's press pushes the lower lip up through the upper one; the vertices nearest the
    # other lip's surface are then on its far side, up to ~0.6 mm away: still touching
    v = flame.load_topology().template.astype(np.float64)
    s = lip_aperture.lip_surfaces()
    v[s.lower] += [0, up_mm / 1000, -back_mm / 1000]
    nearest = min(lip_aperture._point_triangle_distance(v[s.upper], v[s.lower_faces]).min(),
                  lip_aperture._point_triangle_distance(v[s.lower], v[s.upper_faces]).min())
    assert nearest > 0.0001                                        # the vertices alone say apart
    assert lip_aperture.lips_cross(v) and lip_aperture.aperture(v) == 0.0
    d = np.zeros((68, 3))
    d[66, 1] = -0.005                                              # inner lower lip 5 mm down
    assert lip_aperture.vertical_gap(d) == pytest.approx(0.005)


def test_s2l_condition_numpy_matches_torch_and_neutral_is_zero_code():
    torch.manual_seed(0)
    cfg = S2LConfig(encoder="mel", input_dim=12, hidden_size=8, num_layers=2, condition_dim=expression.CODE_DIM)
    model = S2L(cfg).eval()
    torch.nn.init.normal_(model.output.weight, std=0.1)
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    np_model = NumpyS2L(cfg.to_dict(), state)
    feats = np.random.default_rng(1).normal(size=(60, 12)).astype(np.float32)
    codes = expression.parse("0:happy, 0.5:sad:0.5", style=-0.5).codes(36, 30.0)
    with torch.no_grad():
        ref = model(torch.from_numpy(feats)[None], 36, 30.0, 0.0, torch.from_numpy(codes)[None])[0].numpy()
        neutral = model(torch.from_numpy(feats)[None], 36, 30.0)[0].numpy()
    out = np_model(feats, 36, 30.0, 0.0, codes)
    assert np.abs(out - ref).max() <= 1e-5 * np.abs(ref).max()
    np.testing.assert_allclose(np_model(feats, 36, 30.0), neutral, rtol=1e-4, atol=1e-7)
    assert np.abs(out - neutral).max() > 1e-4                      # the code changes the output


def test_old_weights_refuse_an_emotion():
    from core.errors import WeightsError
    from core.pipeline import Animator
    animator = Animator.load(encoder="mel", allow_random=True, weights_dir="/nonexistent-weights")
    assert animator.condition_dim == 0
    samples = np.zeros(16000, np.float32)
    with pytest.raises(WeightsError, match="without emotion"):
        animator.animate((samples, 16000), flame.load_topology().template, 30, expression="happy")
