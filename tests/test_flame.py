import numpy as np
import pytest

from core import flame, meshio
from core.errors import TopologyError
from tests.conftest import HEADS


def test_template_and_landmarks_match_shared_measurements(topology):
    lmk = topology.landmarks(topology.template.astype(np.float64))
    assert lmk.shape == (68, 3)
    # Documented in the FLAME asset notes: mouth 47-48 mm, inter-ocular 88-92 mm.
    assert 0.046 < np.linalg.norm(lmk[48] - lmk[54]) < 0.049
    assert 0.087 < np.linalg.norm(lmk[36] - lmk[45]) < 0.093


def test_landmark_embedding_is_barycentric_on_faces(topology):
    v = topology.template.astype(np.float64)
    lmk = flame.landmarks(v)
    tri = v[topology.faces[topology.lmk_face_idx]]
    manual = (tri * topology.lmk_b_coords[:, :, None]).sum(axis=1)
    np.testing.assert_allclose(lmk, manual, atol=1e-9)
    np.testing.assert_allclose(topology.landmark_matrix() @ v, manual, atol=1e-9)
    # Linear: landmarks of a batch equal per-frame landmarks, and of displacements too.
    batch = np.stack([v, v * 2.0])
    np.testing.assert_allclose(flame.landmarks(batch)[1], 2.0 * manual, atol=1e-9)


def test_regions_are_where_the_landmarks_say(topology):
    v = topology.template
    lmk = topology.landmarks(v.astype(np.float64))
    lips, mouth, upper = (topology.regions[k] for k in ("lips", "mouth_jaw", "upper_face"))
    assert 100 < len(lips) < 400 and len(mouth) > len(lips) and len(upper) > 300
    assert set(lips) <= set(mouth)
    assert not set(mouth) & set(upper)
    # Lip vertices sit between the nose and the chin, mouth corners included.
    assert v[lips, 1].max() < lmk[33, 1] and v[lips, 1].min() > lmk[8, 1]
    for corner in (48, 54):
        assert np.linalg.norm(v[lips] - lmk[corner], axis=1).min() < 0.003
    assert v[upper, 1].min() > lmk[36:48, 1].max()


def test_sample_head_validates(topology):
    v, f = meshio.read_mesh(HEADS / "sample_neutral.ply")
    out = flame.validate_mesh(v, f)
    assert out.shape == (5023, 3) and out.dtype == np.float64
    # Importers may rotate a triangle's corners: still the same topology.
    flame.validate_mesh(v, np.roll(f, 1, axis=1))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda v, f: (v[:-1], None), "5022 vertices"),
        (lambda v, f: (np.vstack([v, v[:1]]), None), "5024 vertices"),
        (lambda v, f: (v[:, :2], None), "shape"),
        (lambda v, f: (np.where(np.arange(5023)[:, None] == 7, np.nan, v), None), "NaN or infinite"),
        (lambda v, f: (np.where(np.arange(5023)[:, None] == 3, np.inf, v), None), "NaN or infinite"),
        (lambda v, f: (v, f[:-1]), "9975 triangles"),
        (lambda v, f: (v, f[::-1]), "different order"),
        (lambda v, f: (v, f[:, ::-1]), "different order or winding"),
        (lambda v, f: (v, np.where(f == 10, 11, f)), "vertex order differs"),
        (lambda v, f: (v, np.hstack([f, f[:, :1]])), "triangles"),
        (lambda v, f: (np.zeros_like(v), None), "degenerate"),
    ],
)
def test_validation_errors_name_what_differs(make, message):
    v, f = meshio.read_mesh(HEADS / "template_neutral.ply")
    bad_v, bad_f = make(v, f)
    with pytest.raises(TopologyError, match=message):
        flame.validate_mesh(bad_v, bad_f)


def test_mesh_io_round_trip(tmp_path, topology):
    v = topology.template.astype(np.float64)
    for name in ("head.ply", "head.obj"):
        path = tmp_path / name
        (meshio.write_ply if name.endswith("ply") else meshio.write_obj)(path, v, topology.faces)
        rv, rf = meshio.read_mesh(path)
        np.testing.assert_allclose(rv, v, atol=1e-6)
        np.testing.assert_array_equal(rf, topology.faces)
    with pytest.raises(TopologyError, match="Unsupported mesh format"):
        meshio.read_mesh(tmp_path / "head.ply").__class__  # exists, fine
        (tmp_path / "x.stl").write_text("solid")
        meshio.read_mesh(tmp_path / "x.stl")
    with pytest.raises(TopologyError, match="not found"):
        meshio.read_mesh(tmp_path / "missing.ply")
