"""FLAME topology: loading, validation, the 68-landmark embedding and face regions.

Every head the project animates shares FLAME's 5023 vertices and 9976 triangles, in the same
order, so a vertex index means the same point of the face on every identity.

Regions are derived once, on the template, from the 68 landmarks (iBUG order):
  * ``lips``: vertices whose frontal (x, y) projection lies inside the outer lip contour
    (landmarks 48-59) grown by 2 mm, and no deeper than 15 mm behind the lip landmarks
    (so the lips' inner surfaces count, the back of the head does not).
  * ``mouth_jaw``: below the subnasale (landmark 33), above 25 mm under the chin
    (landmark 8), within the lateral reach of the lower jaw contour (landmarks 3-13), and in
    front of the jaw-contour's ear end (landmarks 0 and 16): the skin jaw opening moves.
  * ``upper_face``: above the highest eye landmark (36-47): brows, forehead and scalp,
    which speech must not move.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import TopologyError

ASSETS = Path(__file__).resolve().parent / "assets"
NUM_VERTICES = 5023
NUM_FACES = 9976
NUM_LANDMARKS = 68

JAW_CONTOUR = tuple(range(0, 17))
BROWS = tuple(range(17, 27))
NOSE = tuple(range(27, 36))
EYES = tuple(range(36, 48))
OUTER_LIPS = tuple(range(48, 60))
INNER_LIPS = tuple(range(60, 68))
LIP_LANDMARKS = OUTER_LIPS + INNER_LIPS
# The paper's S2L mouth loss: lower jaw contour (5-12) and all lip points (48-67).
MOUTH_LANDMARKS = tuple(range(5, 13)) + LIP_LANDMARKS
# Points speech does not move: used to align any head to the template.
STABLE_LANDMARKS = BROWS + NOSE + EYES


@dataclass(frozen=True)
class FlameTopology:
    faces: np.ndarray          # (9976, 3) int32
    template: np.ndarray       # (5023, 3) float32, metres, Y up, face looking +Z
    lmk_face_idx: np.ndarray   # (68,) int32: the triangle each landmark lies on
    lmk_b_coords: np.ndarray   # (68, 3) float64: barycentric coordinates in that triangle
    regions: dict = field(default_factory=dict)

    def landmarks(self, vertices: np.ndarray) -> np.ndarray:
        """68 landmarks of (..., 5023, 3) vertices (or displacements: the map is linear)."""
        corners = vertices[..., self.faces[self.lmk_face_idx], :]  # (..., 68, 3, 3)
        return np.einsum("...lkc,lk->...lc", corners, self.lmk_b_coords.astype(corners.dtype))

    def landmark_matrix(self) -> np.ndarray:
        """(68, 5023) sparse-in-spirit matrix M with landmarks = M @ vertices."""
        m = np.zeros((NUM_LANDMARKS, NUM_VERTICES), np.float64)
        tri = self.faces[self.lmk_face_idx]
        for l in range(NUM_LANDMARKS):
            for k in range(3):
                m[l, tri[l, k]] += self.lmk_b_coords[l, k]
        return m

    def landmark_distances(self) -> np.ndarray:
        """Distance (m) from each template vertex to its nearest landmark."""
        lmk = self.landmarks(self.template.astype(np.float64))
        d = np.linalg.norm(self.template[:, None, :] - lmk[None], axis=-1)
        return d.min(axis=1)


@lru_cache(maxsize=1)
def load_topology() -> FlameTopology:
    with np.load(ASSETS / "flame_topology.npz") as data:
        topo = FlameTopology(
            faces=data["faces"].astype(np.int32),
            template=data["template"].astype(np.float32),
            lmk_face_idx=data["lmk_face_idx"].astype(np.int32),
            # Renormalised in float64: float32 coordinates summing to 1 - 6e-8 would break the
            # exact equivariance of landmarks under translation that alignment relies on.
            lmk_b_coords=_normalise_rows(data["lmk_b_coords"].astype(np.float64)),
        )
    object.__setattr__(topo, "regions", _derive_regions(topo))
    return topo


def _normalise_rows(b: np.ndarray) -> np.ndarray:
    return b / b.sum(axis=1, keepdims=True)


def _inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule on 2D points."""
    x, y = points[:, 0], points[:, 1]
    inside = np.zeros(len(points), bool)
    n = len(polygon)
    for i in range(n):
        (x1, y1), (x2, y2) = polygon[i], polygon[(i + 1) % n]
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < x_at)
    return inside


def _distance_to_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    d = np.full(len(points), np.inf)
    n = len(polygon)
    for i in range(n):
        a, b = polygon[i], polygon[(i + 1) % n]
        ab = b - a
        t = np.clip(((points - a) @ ab) / max(ab @ ab, 1e-20), 0.0, 1.0)
        d = np.minimum(d, np.linalg.norm(points - (a + t[:, None] * ab), axis=1))
    return d


def _derive_regions(topo: FlameTopology) -> dict:
    v = topo.template.astype(np.float64)
    lmk = topo.landmarks(v)
    outer = lmk[list(OUTER_LIPS)]
    xy = v[:, :2]
    in_lips_2d = _inside_polygon(xy, outer[:, :2]) | (_distance_to_polygon(xy, outer[:, :2]) < 0.002)
    lips = in_lips_2d & (v[:, 2] > outer[:, 2].min() - 0.015)

    jaw = lmk[list(JAW_CONTOUR)]
    lower_jaw = lmk[list(range(3, 14))]
    mouth_jaw = (
        (v[:, 1] < lmk[33, 1])
        & (v[:, 1] > lmk[8, 1] - 0.025)
        & (np.abs(v[:, 0] - lmk[8, 0]) <= np.abs(lower_jaw[:, 0] - lmk[8, 0]).max())
        & (v[:, 2] > min(jaw[0, 2], jaw[16, 2]))
    )
    upper_face = v[:, 1] > lmk[list(EYES), 1].max()
    return {
        "lips": np.flatnonzero(lips).astype(np.int32),
        "mouth_jaw": np.flatnonzero(mouth_jaw | lips).astype(np.int32),
        "upper_face": np.flatnonzero(upper_face).astype(np.int32),
    }


def validate_mesh(vertices, faces=None, what: str = "mesh") -> np.ndarray:
    """Check that ``vertices`` (and ``faces`` if given) are a FLAME-topology head.

    Returns the vertices as a float64 (5023, 3) array; raises TopologyError naming what differs.
    """
    topo = load_topology()
    v = np.asarray(vertices)
    if v.ndim != 2 or v.shape[1] != 3:
        raise TopologyError(f"{what}: expected vertex coordinates of shape (5023, 3), got {v.shape}.")
    if v.shape[0] != NUM_VERTICES:
        raise TopologyError(
            f"{what} has {v.shape[0]} vertices; a FLAME-topology head has exactly {NUM_VERTICES}. "
            "Use a head exported from FLAME without remeshing, merging or deleting vertices."
        )
    v = v.astype(np.float64)
    bad = ~np.isfinite(v).all(axis=1)
    if bad.any():
        first = np.flatnonzero(bad)[:5].tolist()
        raise TopologyError(f"{what} has {int(bad.sum())} vertices with NaN or infinite coordinates (e.g. {first}).")
    if faces is not None:
        _validate_faces(np.asarray(faces), topo, what)
    extent = np.ptp(v, axis=0).max()
    if extent <= 0:
        raise TopologyError(f"{what} is degenerate: all vertices are at the same point.")
    return v


def _validate_faces(f: np.ndarray, topo: FlameTopology, what: str) -> None:
    if f.ndim != 2 or f.shape[1] != 3:
        raise TopologyError(
            f"{what}: faces must be triangles (N, 3); got shape {f.shape}. "
            "Triangulated FLAME has 9976 triangles - do not convert to quads."
        )
    if f.shape[0] != NUM_FACES:
        raise TopologyError(f"{what} has {f.shape[0]} triangles; FLAME topology has {NUM_FACES}.")
    # Compare triangles up to rotation of their corners (importers may rotate the start corner).
    canon = _canonical_faces(f)
    ref = _canonical_faces(topo.faces)
    same = (canon == ref).all(axis=1)
    if not same.all():
        first = int(np.flatnonzero(~same)[0])
        if set(map(tuple, np.sort(canon, axis=1))) == set(map(tuple, np.sort(ref, axis=1))):
            raise TopologyError(
                f"{what} has FLAME's triangles but in a different order or winding (first difference at "
                f"triangle {first}); the vertex order is what matters - re-export without sorting faces."
            )
        raise TopologyError(
            f"{what}'s triangle {first} is {f[first].tolist()}, FLAME's is {topo.faces[first].tolist()}: "
            "the vertex order differs from FLAME (was the mesh remeshed or its vertices re-sorted?)."
        )


def _canonical_faces(f: np.ndarray) -> np.ndarray:
    """Rotate each triangle so its smallest index comes first (keeps winding)."""
    f = np.asarray(f, np.int64)
    shift = np.argmin(f, axis=1)
    idx = (np.arange(3)[None, :] + shift[:, None]) % 3
    return np.take_along_axis(f, idx, axis=1)


def landmarks(vertices: np.ndarray) -> np.ndarray:
    """68 landmarks of FLAME-topology vertices (..., 5023, 3)."""
    return load_topology().landmarks(np.asarray(vertices))
