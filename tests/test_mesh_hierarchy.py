"""The shipped S2D mesh hierarchy: sizes, subset property, up-sampling, spirals, loader checks."""

import importlib.util
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.errors import WeightsError  # noqa: E402
from core.flame import load_topology  # noqa: E402
from core.mesh_hierarchy import DEFAULT_PATH, load_hierarchy  # noqa: E402

_spec = importlib.util.spec_from_file_location("build_mesh_hierarchy",
                                               ROOT / "tools" / "build_mesh_hierarchy.py")
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)


@pytest.fixture(scope="module")
def h():
    return load_hierarchy()


def _neighbours(n, faces):
    nb = [set() for _ in range(n)]
    for a, b, c in faces.tolist():
        nb[a] |= {b, c}
        nb[b] |= {a, c}
        nb[c] |= {a, b}
    return nb


def test_level_sizes_and_parameters(h):
    assert h.level_sizes == (5023, 1256, 314, 79, 20)
    for l in range(4):
        assert h.level_sizes[l + 1] == math.ceil(h.level_sizes[l] / 4)
    assert h.spiral_length == (9,) * 5 and h.dilation == (2, 2, 1, 1, 1)
    for l, n in enumerate(h.level_sizes):
        assert h.vertices[l].shape == (n, 3) and h.vertices[l].dtype == np.float32
        assert h.spirals[l].shape == (n, 9)


def test_coarse_levels_are_subsets_with_original_positions(h):
    topo = load_topology()
    np.testing.assert_array_equal(h.vertices[0], topo.template)
    np.testing.assert_array_equal(h.faces[0], topo.faces)
    for l in range(4):
        d = h.down[l]
        assert np.all(np.diff(d) > 0) and d.min() >= 0 and d.max() < h.level_sizes[l]
        np.testing.assert_array_equal(h.vertices[l][d], h.vertices[l + 1])
        np.testing.assert_array_equal(h.downsample(l, h.vertices[l]), h.vertices[l + 1])


def test_coarse_meshes_are_clean_manifolds(h):
    labels0 = tool._components(5023, h.faces[0])
    for l in range(5):
        f = h.faces[l].astype(np.int64)
        n = h.level_sizes[l]
        assert f.min() >= 0 and f.max() < n
        assert np.all((f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2]))
        assert len(np.unique(np.sort(f, axis=1), axis=0)) == len(f), "duplicate face"
        directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        assert len(np.unique(directed, axis=0)) == len(directed), "inconsistent orientation"
        assert np.all(np.bincount(f.ravel(), minlength=n) >= 2), "vertex without faces"
        # Every connected component (head, two eyeballs) survives with its Euler characteristic.
        edges = np.unique(np.sort(directed, axis=1), axis=0)
        labels = labels0[_chain(h, l)]
        euler = [int((labels == c).sum() - (labels[edges[:, 0]] == c).sum() + (labels[f[:, 0]] == c).sum())
                 for c in np.unique(labels0)]
        assert euler == [0, 2, 2]


def _chain(h, l):
    idx = np.arange(h.level_sizes[0])
    for k in range(l):
        idx = idx[h.down[k]]
    return idx


def test_upsampling_rows_are_barycentric_and_keep_kept_vertices(h):
    for l in range(4):
        w = h.up_weight[l]
        assert h.up_index[l].shape == (h.level_sizes[l], 3)
        assert np.all(w >= 0)
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6)
        u = h.up_matrix(l)
        assert u.shape == (h.level_sizes[l], h.level_sizes[l + 1])
        np.testing.assert_array_equal(u[h.down[l]], np.eye(h.level_sizes[l + 1], dtype=np.float32))
        up = h.upsample(l, h.vertices[l + 1])
        np.testing.assert_array_equal(up[h.down[l]], h.vertices[l + 1])
        # Each row's 3 columns are the corners of one coarse triangle.
        faces = {frozenset(t) for t in h.faces[l + 1].tolist()}
        removed = np.setdiff1d(np.arange(h.level_sizes[l]), h.down[l])
        assert all(frozenset(r) in faces for r in h.up_index[l][removed].tolist())


def test_upsample_matches_dense_matrix_on_batches(h):
    rng = np.random.default_rng(0)
    for l in range(4):
        x = rng.standard_normal((2, 3, h.level_sizes[l + 1], 4)).astype(np.float32)
        expected = np.einsum("nm,...mc->...nc", h.up_matrix(l), x)
        np.testing.assert_allclose(h.upsample(l, x), expected, rtol=1e-5, atol=1e-6)


def test_upsampled_template_is_close_to_the_template(h):
    # Measured at build time: mean 0.31 / 1.17 / 3.73 / 22.9 mm, max 2.31 / 8.97 / 20.1 / 72.1 mm.
    bounds_mm = [(0.5, 3.0), (1.5, 10.0), (5.0, 25.0), (30.0, 80.0)]
    for l, (mean_mm, max_mm) in enumerate(bounds_mm):
        err = np.linalg.norm(h.upsample(l, h.vertices[l + 1]) - h.vertices[l], axis=1) * 1000
        assert err.mean() < mean_mm and err.max() < max_mm, (l, err.mean(), err.max())


def test_spirals_start_at_centre_and_walk_the_one_ring(h):
    for l in range(5):
        s, n = h.spirals[l], h.level_sizes[l]
        nb = _neighbours(n, h.faces[l])
        np.testing.assert_array_equal(s[:, 0], np.arange(n))
        assert s.min() >= 0 and s.max() < n
        for c in range(n):
            k = len(nb[c]) // h.dilation[l]   # entries 1..k come from the 1-ring
            ring = s[c, 1:1 + min(k, 8)].tolist()
            assert set(ring) <= nb[c] and len(set(ring)) == len(ring), (l, c)
            if h.dilation[l] == 1 and len(nb[c]) <= 8:
                assert set(ring) == nb[c]


def test_one_ring_is_counter_clockwise_from_up():
    topo = load_topology()
    v, f = topo.template.astype(np.float64), topo.faces
    full = tool.spirals(v, f, 17, 1)
    np.testing.assert_array_equal(load_hierarchy().spirals[0], full[:, ::2])  # dilation 2
    nb = _neighbours(len(v), f)
    oriented = {(a, b) for t in f.tolist() for a, b in zip(t, t[1:] + t[:1])}
    faces_of = np.bincount(f.ravel(), minlength=len(v))
    checked = 0
    for c in range(len(v)):
        d = len(nb[c])
        if d != faces_of[c] or d > 16:  # rim vertex (open fan) or ring longer than the spiral
            continue
        ring = full[c, 1:1 + d].tolist()
        # Face (c, r_i, r_{i+1}) is counter-clockwise, so edge r_i -> r_{i+1} is one of its edges.
        assert all((a, b) in oriented for a, b in zip(ring, ring[1:] + ring[:1])), c
        checked += 1
    assert checked > 4900
    # The ring starts from the neighbour pointing most "up" (on the tangent plane): on the face
    # and sides (surface not facing up or down) that neighbour lies above the centre.
    normals = tool._vertex_normals(v, f)
    side = np.abs(normals[:, 1]) < 0.5
    rise = v[full[:, 1], 1] - v[:, 1]
    assert np.mean(rise[side] > 0) > 0.99


def test_coarse_spirals_are_padded_with_the_centre(h):
    s = h.spirals[4]
    labels = tool._components(20, h.faces[4])
    sizes = np.bincount(labels)
    eyeball_vertex = int(np.flatnonzero(sizes[labels] == 4)[0])  # the eyeballs end as tetrahedra
    row = s[eyeball_vertex].tolist()
    assert row[0] == eyeball_vertex and len(set(row[1:4])) == 3
    assert row[4:] == [eyeball_vertex] * 5


def test_closest_point_on_triangle_matches_dense_sampling():
    rng = np.random.default_rng(1)
    a, b, c = (rng.standard_normal((5, 3)) for _ in range(3))
    p = rng.standard_normal((20, 3)) * 2
    dist, bary = tool._closest_on_triangles(p, a, b, c)
    g = np.linspace(0, 1, 201)
    u, v = np.meshgrid(g, g)
    keep = u + v <= 1
    w = np.stack([1 - u[keep] - v[keep], u[keep], v[keep]], axis=1)
    for k in range(5):
        samples = w @ np.stack([a[k], b[k], c[k]])
        brute = ((p[:, None] - samples[None]) ** 2).sum(-1).min(1)
        assert np.all(dist[:, k] <= brute + 1e-12) and np.all(dist[:, k] > brute - 1e-3)
        recon = bary[:, k] @ np.stack([a[k], b[k], c[k]])
        np.testing.assert_allclose(((p - recon) ** 2).sum(-1), dist[:, k], rtol=1e-9, atol=1e-12)
        assert np.all(bary[:, k] >= -1e-12)


def test_decimation_is_deterministic_and_reproduces_the_shipped_level(h):
    first = tool.decimate(h.vertices[2], h.faces[2], 79)
    second = tool.decimate(h.vertices[2], h.faces[2], 79)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    np.testing.assert_array_equal(first[0], h.down[2])
    np.testing.assert_array_equal(first[1], h.faces[3])


def test_loader_rejects_missing_or_tampered_files(tmp_path):
    with pytest.raises(WeightsError, match="build_mesh_hierarchy"):
        load_hierarchy(tmp_path / "absent.npz")

    good = tmp_path / "copy.npz"
    shutil.copy(DEFAULT_PATH, good)
    assert load_hierarchy(good).level_sizes == (5023, 1256, 314, 79, 20)

    with np.load(DEFAULT_PATH) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["source_sha256"] = np.array("0" * 64)
    tampered = tmp_path / "tampered.npz"
    np.savez_compressed(tampered, **arrays)
    with pytest.raises(WeightsError, match="different FLAME topology.*build_mesh_hierarchy"):
        load_hierarchy(tampered)

    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip file")
    with pytest.raises(WeightsError, match="unreadable"):
        load_hierarchy(corrupt)
