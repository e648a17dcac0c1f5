import numpy as np
import pytest

from core import alignment
from tests.conftest import rotation


def _motion(topology):
    """A smooth synthetic 'speech' motion of the template: the chin drops, lips spread."""
    v = topology.template.astype(np.float64)
    d = np.zeros_like(v)
    lmk = topology.landmarks(v)
    jaw = np.intersect1d(topology.regions["mouth_jaw"], np.flatnonzero(v[:, 1] < lmk[33, 1] - 0.008))
    d[jaw, 1] = -0.01 * np.clip((v[jaw, 1].max() - v[jaw, 1]) / 0.05, 0, 1)
    d[jaw, 0] = 0.002 * v[jaw, 0] / np.abs(v[jaw, 0]).max()
    return d


@pytest.mark.parametrize(
    "scale, axis, degrees, shift",
    [
        (1.0, (0, 1, 0), 0, (0, 0, 0)),
        (100.0, (0, 1, 0), 0, (0, 0, 0)),                # centimetres
        (1.0, (1, 0, 0), 90, (0, 0, 0)),                 # Z-up
        (0.37, (0.3, 1.0, -0.2), 133, (1.5, -2.0, 7.0)),  # everything at once
        (250.0, (1, 1, 1), -70, (-30.0, 12.0, 4.0)),
    ],
)
def test_round_trip_recovers_template_motion(topology, scale, axis, degrees, shift):
    v = topology.template.astype(np.float64)
    r = rotation(axis, degrees)
    user = scale * v @ r.T + np.asarray(shift)
    sim = alignment.align_to_template(user)
    np.testing.assert_allclose(sim.to_canonical(user), v, atol=1e-9 * max(1, scale))
    np.testing.assert_allclose(sim.from_canonical(v), user, rtol=0, atol=1e-9 * max(1.0, scale, np.abs(shift).max()))
    # The same canonical motion lands on the user head scaled and rotated like the head.
    d = _motion(topology)
    d_user = sim.displacements_from_canonical(d)
    expected = scale * d @ r.T
    assert np.abs(d_user - expected).max() <= 1e-6 * np.abs(expected).max()
    back = sim.displacements_to_canonical(d_user)
    assert np.abs(back - d).max() <= 1e-6 * np.abs(d).max()


def test_alignment_ignores_mouth_and_jaw(topology):
    """A head with an open mouth aligns exactly like the closed one: only stable points count."""
    v = topology.template.astype(np.float64)
    opened = v + _motion(topology) * 2
    sim = alignment.align_to_template(opened)
    assert abs(sim.scale - 1) < 1e-9
    np.testing.assert_allclose(sim.rotation, np.eye(3), atol=1e-9)


def _angle_degrees(r):
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))))


def test_other_identity_aligns_closely(topology):
    """Another FLAME identity: scale, rotation and translation of the fit, not only the scale."""
    from core import meshio
    from tests.conftest import HEADS
    v, _ = meshio.read_mesh(HEADS / "sample_neutral.ply")
    # As it is: already in the template's frame, so nearly the identity transform.
    s0 = alignment.align_to_template(v)
    assert abs(s0.scale - 1) < 0.05
    assert _angle_degrees(s0.rotation) < 5.0  # its own head tilt: about 2.4 degrees
    assert np.abs(s0.translation).max() < 0.005  # metres
    # In centimetres, rotated 30 degrees about Z and moved: the fit must undo exactly that.
    r, shift = rotation((0, 0, 1), 30), np.array([5.0, -2.0, 30.0])
    sim = alignment.align_to_template(v * 100 @ r.T + shift)
    assert abs(sim.scale - s0.scale / 100) < 1e-9
    np.testing.assert_allclose(sim.rotation, s0.rotation @ r.T, atol=1e-9)
    assert abs(_angle_degrees(sim.rotation @ r) - _angle_degrees(s0.rotation)) < 1e-6
    np.testing.assert_allclose(sim.translation, s0.translation - sim.scale * sim.rotation @ shift, atol=1e-9)
    lmk = topology.landmarks
    idx = list(alignment.flame.STABLE_LANDMARKS)
    mapped = lmk(sim.to_canonical(v * 100 @ r.T + shift))[idx]
    assert np.abs(mapped - lmk(topology.template.astype(np.float64))[idx]).max() < 0.005
