"""core.compact: the PCA basis of the compact bake keeps its stated per-vertex error bound."""

import numpy as np
import pytest

from core import compact


def _motion(t=120, n=500, rank=4, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    shapes = rng.standard_normal((rank, n, 3)) * 0.003           # a few mm
    weights = np.sin(np.linspace(0, 8, t)[:, None] * (1 + np.arange(rank))[None])
    d = np.einsum("tk,knc->tnc", weights, shapes)
    return d + noise * rng.standard_normal(d.shape)


def _max_err(cb, d):
    return np.linalg.norm(cb.reconstruct() - d, axis=-1).max()


def test_exact_low_rank_motion_needs_its_rank():
    d = _motion(rank=4)
    cb = compact.fit_compact(d, tolerance=1e-6)
    assert cb.num_components == 4 and cb.bound_met
    assert _max_err(cb, d) <= cb.max_error + 1e-9 <= 1e-6


def test_bound_holds_on_noisy_motion_and_is_measured_exactly():
    d = _motion(rank=6, noise=2e-6)
    for tol in (1e-4, 1e-5):
        cb = compact.fit_compact(d, tolerance=tol)
        err = _max_err(cb, d)
        assert cb.bound_met and err <= tol
        assert err == pytest.approx(cb.max_error, rel=1e-6)
        if cb.num_components > 1:  # the smallest basis that meets the bound
            fewer = compact.fit_compact(d, tolerance=tol, max_components=cb.num_components - 1)
            assert not fewer.bound_met and fewer.max_error > tol


def test_weights_fit_blender_slider_range_and_zero_motion_stays_zero():
    d = _motion(rank=3) * 50  # large motion: scale moves into the basis
    cb = compact.fit_compact(d, tolerance=1e-5)
    assert np.abs(cb.weights).max() <= 1.0 + 1e-6
    # each component scaled by a power of two (exact in floating point): peak within (0.5, 1]
    assert (np.abs(cb.weights).max(axis=0) > 0.5).all()
    still = compact.fit_compact(np.zeros((10, 50, 3)), tolerance=1e-5)
    assert still.max_error == 0.0 and np.abs(still.reconstruct()).max() == 0.0


def test_component_cap_reports_the_measured_error_as_bound():
    d = _motion(rank=8, noise=1e-4)
    cb = compact.fit_compact(d, tolerance=1e-7, max_components=2)
    assert cb.num_components == 2 and not cb.bound_met
    assert cb.bound == cb.max_error == pytest.approx(_max_err(cb, d), rel=1e-6)


def test_long_clips_fit_on_a_subset_but_check_every_frame(monkeypatch):
    monkeypatch.setattr(compact, "MAX_FIT_FRAMES", 50)
    d = _motion(t=400, rank=3, noise=1e-6)
    cb = compact.fit_compact(d, tolerance=2e-5)
    assert cb.weights.shape == (400, cb.num_components)
    assert _max_err(cb, d) <= 2e-5


def test_default_tolerance_scales_with_head_size():
    from core import flame
    template = flame.load_topology().template
    tol_m = compact.default_tolerance(template)
    assert 0.5e-4 < tol_m < 2e-4
    assert compact.default_tolerance(template * 100) == pytest.approx(tol_m * 100)


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        compact.fit_compact(np.zeros((0, 5, 3)), 1e-4)
    with pytest.raises(ValueError):
        compact.fit_compact(np.zeros((3, 5, 3)), 0.0)


def test_max_vertex_error_equals_the_plain_formula_bit_for_bit():
    """The fast error check (squares in cache-sized rows, one square root, early stop past a
    limit) returns exactly what the plain numpy expression gives, so no choice of k changes."""
    rng = np.random.default_rng(5)
    d = (rng.standard_normal((300, 3 * 211)) * 10.0 ** rng.uniform(-7, -2, (300, 3 * 211))).astype(np.float32)
    w = rng.standard_normal((300, 7))
    v = rng.standard_normal((7, 3 * 211)) * 1e-3
    plain = 0.0
    for s in range(0, 300, 256):
        r = d[s:s + 256].astype(np.float64) - w[s:s + 256] @ v
        plain = max(plain, float(np.sqrt((r.reshape(len(r), -1, 3) ** 2).sum(-1)).max()))
    assert compact._max_vertex_error(d, w, v) == plain
    assert compact._max_vertex_error(d, w, v, limit=plain / 2) > plain / 2
