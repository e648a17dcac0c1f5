"""Any head, any topology: surface queries, registration of the FLAME template, motion transfer."""

import numpy as np
import pytest

from core import alignment, flame, meshio, registration, surface, transfer
from core.errors import NotAHeadError, TopologyError
from tests.conftest import HEADS, rotation

# Small settings: the tests check behaviour, tools/evaluate_transfer.py measures quality.
TINY = registration.FitConfig(nodes=120, samples=6000, smooth_schedule=(10.0, 1.0, 0.1), iterations_per_stage=2)


def quads_from(faces):
    """Merge each triangle with one unused neighbour into a quad where possible (a mixed mesh)."""
    f = np.asarray(faces)
    edge_owner = {}
    for t, tri in enumerate(f):
        for k in range(3):
            edge_owner.setdefault(tuple(sorted((tri[k], tri[(k + 1) % 3]))), []).append((t, k))
    used = np.zeros(len(f), bool)
    polys = []
    for t, tri in enumerate(f):
        if used[t]:
            continue
        for k in range(3):
            a, b = tri[k], tri[(k + 1) % 3]
            other = [o for o in edge_owner[tuple(sorted((a, b)))] if o[0] != t and not used[o[0]]]
            if other:
                u = other[0][0]
                c = tri[(k + 2) % 3]
                d = [x for x in f[u] if x not in (a, b)][0]
                polys.append([a, d, b, c])  # keeps the winding of t
                used[t] = used[u] = True
                break
        else:
            polys.append(list(tri))
            used[t] = True
    return polys


@pytest.fixture(scope="module")
def user_head():
    """The sample FLAME head as a stranger: vertices shuffled, faces mostly quads, moved, scaled
    to centimetres and rotated so it lies on its side facing down."""
    v, f = meshio.read_mesh(HEADS / "sample_neutral.ply")
    rng = np.random.default_rng(3)
    perm = rng.permutation(len(v))
    inv = np.argsort(perm)
    rot = rotation([0.2, 0.3, 1.0], 110)
    user = 100.0 * v[perm] @ rot.T + np.array([12.0, -40.0, 7.0])
    polys = [[int(inv[i]) for i in p] for p in quads_from(f)]
    return {"vertices": user, "polys": polys, "perm": perm, "flame": v, "scale": 100.0, "rotation": rot}


@pytest.fixture(scope="module")
def fitted(user_head):
    reg = registration.register(user_head["vertices"], user_head["polys"], config=TINY)
    return reg, transfer.bind(user_head["vertices"], user_head["polys"], reg)


# --- surface queries ------------------------------------------------------------------------------

def test_polygons_to_triangles_all_layouts():
    quad = [[0, 1, 2, 3]]
    ngon = [[0, 1, 2, 3, 4]]
    t, owner = surface.polygons_to_triangles(quad + ngon)
    assert t.tolist() == [[0, 1, 2], [0, 2, 3], [0, 1, 2], [0, 2, 3], [0, 3, 4]]
    assert owner.tolist() == [0, 0, 1, 1, 1]
    loops = np.array([0, 1, 2, 3, 0, 1, 2, 3, 4])
    t2, _ = surface.polygons_to_triangles((loops, np.array([0, 4]), np.array([4, 5])))
    np.testing.assert_array_equal(t, t2)
    t3, _ = surface.polygons_to_triangles(np.array([[0, 1, 2, 3]]))
    np.testing.assert_array_equal(t3, t[:2])
    with pytest.raises(TopologyError, match="fewer than 3"):
        surface.polygons_to_triangles([[0, 1]])


def test_nearest_is_exact():
    rng = np.random.default_rng(0)
    p = rng.standard_normal((8000, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)       # a surface: uneven cells
    q = np.concatenate([p[:1000] * (1 + 0.02 * rng.standard_normal((1000, 1))),
                        rng.standard_normal((200, 3)) * 5])   # near and far queries
    idx, dist = surface.nearest(q, p)
    brute = np.argmin(((q[:, None] - p[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(idx, brute)
    np.testing.assert_allclose(dist, np.linalg.norm(q - p[brute], axis=1))
    mask = rng.random(len(p)) < 0.2
    idx_m, _ = surface.nearest(q, p, mask)
    assert mask[idx_m].all()
    np.testing.assert_array_equal(idx_m, np.flatnonzero(mask)[np.argmin(((q[:, None] - p[mask][None]) ** 2).sum(-1), 1)])


def test_closest_point_on_triangles_beats_sampling():
    rng = np.random.default_rng(1)
    a, b, c = (rng.standard_normal((500, 3)) for _ in range(3))
    pts = rng.standard_normal((500, 3)) * 2
    bary = surface.closest_on_triangles(pts, a, b, c)
    assert np.allclose(bary.sum(1), 1) and (bary >= -1e-9).all()
    best = np.linalg.norm(pts - (bary[:, :1] * a + bary[:, 1:2] * b + bary[:, 2:] * c), axis=1)
    s = rng.random((4000, 2))
    s = np.where(s.sum(1, keepdims=True) > 1, 1 - s, s)
    w = np.stack([1 - s.sum(1), s[:, 0], s[:, 1]], 1)
    for i in range(0, 500, 50):
        cloud = w @ np.stack([a[i], b[i], c[i]])
        assert best[i] <= np.linalg.norm(cloud - pts[i], axis=1).min() + 1e-9


# --- registration ---------------------------------------------------------------------------------

def test_register_recovers_frame_and_surface(user_head, fitted):
    reg, _ = fitted
    sim = reg.similarity
    # user = 100 R v + t, so canonical ~ R^T (user - t) / 100
    assert sim.scale == pytest.approx(1 / user_head["scale"], rel=0.03)
    angle = np.degrees(np.arccos(np.clip((np.trace(sim.rotation @ user_head["rotation"]) - 1) / 2, -1, 1)))
    assert angle < 3.0
    assert reg.landmarks_from == "automatic"
    assert reg.fitted.shape == (flame.NUM_VERTICES, 3)
    # The fitted template lies on the user's surface, near the right places.
    truth = 100.0 * user_head["flame"] @ user_head["rotation"].T + np.array([12.0, -40.0, 7.0])
    lmk_err = np.linalg.norm(flame.landmarks(reg.fitted) - flame.landmarks(truth), axis=1) / 100.0 * 1000
    assert np.median(lmk_err) < 3.0, lmk_err
    assert reg.fit_face_mm < registration.MAX_FIT_FACE_MM


def test_register_with_user_landmarks(user_head):
    truth = 100.0 * user_head["flame"] @ user_head["rotation"].T + np.array([12.0, -40.0, 7.0])
    lmk = flame.landmarks(truth)
    points = {name: lmk[i] for name, i in registration.USER_LANDMARKS.items()
              if name in ("nose_tip", "chin", "eye_outer_left", "eye_outer_right", "mouth_corner_left")}
    sim = registration.similarity_from_landmarks(points)
    assert sim.scale == pytest.approx(0.01, rel=0.05)
    reg = registration.register(user_head["vertices"], user_head["polys"], landmarks=points, config=TINY)
    assert reg.landmarks_from == "user"
    with pytest.raises(TopologyError, match="Unknown landmark"):
        registration.similarity_from_landmarks({"nose": (0, 0, 0), **points})
    with pytest.raises(TopologyError, match="at least 4"):
        registration.similarity_from_landmarks(dict(list(points.items())[:3]))


def _sphere(n=40):
    u, w = np.meshgrid(np.linspace(0, np.pi, n), np.linspace(0, 2 * np.pi, 2 * n, endpoint=False), indexing="ij")
    v = np.stack([np.sin(u) * np.cos(w), np.sin(u) * np.sin(w), np.cos(u)], -1).reshape(-1, 3) * 0.1
    quads = []
    for i in range(n - 1):
        for j in range(2 * n):
            a, b = i * 2 * n + j, i * 2 * n + (j + 1) % (2 * n)
            quads.append([a, b, b + 2 * n, a + 2 * n])
    return v, quads


def test_not_a_head_is_refused():
    v, quads = _sphere()
    with pytest.raises(NotAHeadError, match="does not look like a head"):
        registration.register(v, quads, config=TINY)


@pytest.mark.parametrize("case, match", [
    ("few", "at least"), ("nan", "NaN"), ("nofaces", "no faces"), ("badindex", "outside"), ("flat", "degenerate"),
])
def test_bad_meshes_get_one_clear_error(case, match):
    v, quads = _sphere()
    if case == "few":
        v, quads = v[:100], [q for q in quads if max(q) < 100]
    elif case == "nan":
        v = v.copy()
        v[5, 1] = np.nan
    elif case == "nofaces":
        quads = []
    elif case == "badindex":
        quads = quads + [[0, 1, len(v) + 5]]
    elif case == "flat":
        v = np.zeros_like(v)
    with pytest.raises(TopologyError, match=match):
        registration.register(v, quads, config=TINY)


# --- transfer -----------------------------------------------------------------------------------

def test_correspondence_arrays_round_trip(fitted):
    _, corr = fitted
    again = transfer.Correspondence.from_arrays(corr.to_arrays())
    for k, a in corr.to_arrays().items():
        np.testing.assert_array_equal(getattr(again, k), a)
    broken = corr.to_arrays()
    broken["weights"] = broken["weights"][:-1]
    with pytest.raises(TopologyError, match="inconsistent"):
        transfer.Correspondence.from_arrays(broken)


def test_lips_bind_to_their_own_lip(user_head, fitted):
    _, corr = fitted
    label, _ = transfer.lip_labels()
    faces = flame.load_topology().faces
    own = label[user_head["perm"]]            # the true lip of each user vertex
    corners = label[faces[corr.triangles]]
    # Between the mouth corners (where the lips join, either lip is right).
    lmk = flame.landmarks(user_head["flame"])
    x = user_head["flame"][user_head["perm"], 0]
    between = np.abs(x - lmk[51, 0]) < 0.8 * 0.5 * (lmk[54, 0] - lmk[48, 0])
    upper, lower = (own == transfer.UPPER) & between, (own == transfer.LOWER) & between
    assert upper.sum() > 50 and lower.sum() > 50
    assert not (corners[upper] == transfer.LOWER).any(), "an upper-lip vertex bound to the lower lip"
    assert not (corners[lower] == transfer.UPPER).any(), "a lower-lip vertex bound to the upper lip"


def test_transfer_opens_the_mouth_like_flame(user_head, fitted):
    reg, corr = fitted
    label, _ = transfer.lip_labels()
    # A jaw-drop-like field on FLAME: the lower lip goes 8 mm down, the upper lip stays.
    d = np.zeros((2, flame.NUM_VERTICES, 3), np.float32)
    d[1, label == transfer.LOWER, 1] = -0.008
    d_user = reg.similarity.displacements_from_canonical(d)
    moved = transfer.transfer(d_user, corr)
    assert moved.shape == (2, len(user_head["vertices"]), 3)
    assert np.abs(moved[0]).max() == 0.0
    own = label[user_head["perm"]]
    lmk = flame.landmarks(user_head["flame"])
    x = user_head["flame"][user_head["perm"], 0]
    between = np.abs(x - lmk[51, 0]) < 0.8 * 0.5 * (lmk[54, 0] - lmk[48, 0])
    drop = -(moved[1] @ reg.similarity.rotation.T)[:, 1] * reg.similarity.scale * 1000  # mm, canonical
    assert np.median(drop[own == transfer.LOWER]) > 6.0
    # The upper lip between the corners does not follow the lower one at all (no tearing).
    assert np.abs(drop[(own == transfer.UPPER) & between]).max() < 1e-6
    # The canonical path (rotation and scale applied inside) gives the same motion.
    np.testing.assert_allclose(transfer.transfer(d, corr, reg.similarity), moved, atol=1e-6 * 100)
    with pytest.raises(TopologyError, match="Expected FLAME displacements"):
        transfer.transfer(np.zeros((2, 10, 3)), corr)


def test_far_parts_stay_still(user_head, fitted):
    reg, _ = fitted
    hat = user_head["vertices"].mean(0) + np.array([[0.0, 0.0, 40.0]]) * np.ones((5, 1))  # 40 cm away
    corr = transfer.bind(np.concatenate([user_head["vertices"], hat]),
                         user_head["polys"], reg)
    assert (corr.weights[-5:] == 0).all()
    assert corr.weights[:-5].min() > 0.99


def test_jaw_motion_recovers_a_rigid_motion():
    topo = flame.load_topology()
    v = topo.template.astype(np.float64)
    r = rotation([1, 0, 0], 9)
    pivot = np.array([0.0, 0.0, -0.05])
    moved = (v - pivot) @ r.T + pivot
    m = transfer.jaw_motion(v, (moved - v)[None])
    np.testing.assert_allclose(m[0, :3, :3], r, atol=1e-6)
    np.testing.assert_allclose(v @ m[0, :3, :3].T + m[0, :3, 3], moved, atol=1e-6)


def test_unsure_lip_sides_follow_their_own_sheet():
    """Two touching sheets (a mouth corner's inner lips) joined at one end: each unsure vertex
    takes the side of the sheet it is on, whatever the noise in its own nearness, and a small
    change of the distances does not flip a vertex away from where the sheets join."""
    k = 12
    up, lo = np.arange(k), k + np.arange(k)          # two chains; vertex 0 of each is sure
    edges = np.concatenate([np.stack([up[:-1], up[1:]], 1), np.stack([lo[:-1], lo[1:]], 1),
                            [[up[-1], lo[-1]]]])      # joined at the far end (the commissure)
    rng = np.random.default_rng(0)
    for _ in range(20):
        score = rng.uniform(-0.5, 0.5, 2 * k)        # both lips about as near: unsure
        score[up[0]], score[lo[0]] = rng.uniform(1.0, 3.0), -rng.uniform(1.0, 3.0)
        x = transfer._diffuse_side(score, np.abs(score) < 1.0, edges)
        # Away from the join (the last two of each chain), every vertex is on its own sheet's side.
        assert (x[up[:-2]] > 0).all() and (x[lo[:-2]] < 0).all()
