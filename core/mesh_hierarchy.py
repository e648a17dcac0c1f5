"""The S2D mesh hierarchy: FLAME decimated 4x per level, with up-sampling maps and spirals.

Built once by ``tools/build_mesh_hierarchy.py`` (quadric-error edge collapse, as in CoMA) and
shipped as ``core/assets/mesh_hierarchy.npz``, so inference never recomputes it.

  * level 0 is the full FLAME mesh; level l+1 keeps ceil(N_l / 4) of level l's vertices, at
    their original positions, so down-sampling is a selection: ``x[..., down[l], :]``.
  * up-sampling U_l (N_l x N_{l+1}) writes each level-l vertex as barycentric coordinates of its
    closest point on the level-(l+1) mesh: exactly 3 entries per row, rows sum to 1, kept
    vertices map to themselves.
  * spirals (SpiralNet++): per vertex, itself, then its 1-ring counter-clockwise from the
    neighbour nearest to "up", then the outer rings; dilated on the two finest levels; short
    spirals padded with the centre vertex.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import WeightsError

DEFAULT_PATH = Path(__file__).resolve().parent / "assets" / "mesh_hierarchy.npz"
NUM_LEVELS = 5
FACTOR = 4
SPIRAL_LENGTH = (9, 9, 9, 9, 9)
DILATION = (2, 2, 1, 1, 1)
REBUILD_HINT = "Run `python tools/build_mesh_hierarchy.py` to rebuild it."


def topology_sha256(template: np.ndarray, faces: np.ndarray) -> str:
    """Fingerprint of the mesh the hierarchy was built from (float32 template + int32 faces)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(template, dtype="<f4").tobytes())
    h.update(np.ascontiguousarray(faces, dtype="<i4").tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class MeshHierarchy:
    level_sizes: tuple          # (5023, 1256, 314, 79, 20)
    vertices: list              # per level (N_l, 3) float32 template positions
    faces: list                 # per level (F_l, 3) int32
    spirals: list               # per level (N_l, spiral_length) int32, centre first
    down: list                  # per level l < 4: (N_{l+1},) int32 indices into level l
    up_index: list              # per level l < 4: (N_l, 3) int32 columns of U_l
    up_weight: list             # per level l < 4: (N_l, 3) float32 barycentric weights
    spiral_length: tuple
    dilation: tuple
    source_sha256: str

    @property
    def num_levels(self) -> int:
        return len(self.level_sizes)

    def downsample(self, l: int, x: np.ndarray) -> np.ndarray:
        """(..., N_l, C) -> (..., N_{l+1}, C): keep the vertices that survive the decimation."""
        return x[..., self.down[l], :]

    def upsample(self, l: int, x: np.ndarray) -> np.ndarray:
        """(..., N_{l+1}, C) -> (..., N_l, C): U_l @ x, as a gather of 3 weighted columns."""
        gathered = x[..., self.up_index[l], :]                      # (..., N_l, 3, C)
        w = self.up_weight[l].astype(np.result_type(x.dtype, np.float32))
        return np.einsum("...nkc,nk->...nc", gathered, w)

    def up_matrix(self, l: int) -> np.ndarray:
        """Dense float32 U_l of shape (N_l, N_{l+1})."""
        n, m = self.level_sizes[l], self.level_sizes[l + 1]
        u = np.zeros((n, m), np.float32)
        np.add.at(u, (np.repeat(np.arange(n), 3), self.up_index[l].ravel()), self.up_weight[l].ravel())
        return u


def load_hierarchy(path=None) -> MeshHierarchy:
    """Load the shipped hierarchy (cached) or the file at ``path``; verify it fits FLAME."""
    if path is None:
        return _load_default()
    return _load(Path(path))


@lru_cache(maxsize=1)
def _load_default() -> MeshHierarchy:
    return _load(DEFAULT_PATH)


def _load(path: Path) -> MeshHierarchy:
    if not path.is_file():
        raise WeightsError(f"Mesh hierarchy file {path} is missing. {REBUILD_HINT}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as exc:  # zip/npy corruption surfaces as many exception types
        raise WeightsError(f"Mesh hierarchy file {path} is unreadable ({exc}). {REBUILD_HINT}") from exc

    from .flame import load_topology  # late: flame is heavier and only needed for the check

    topo = load_topology()
    expected = topology_sha256(topo.template, topo.faces)
    stored = str(arrays.get("source_sha256", ""))
    if stored != expected:
        raise WeightsError(
            f"Mesh hierarchy file {path} was built from a different FLAME topology "
            f"(sha256 {stored[:12] or 'missing'}..., expected {expected[:12]}...). {REBUILD_HINT}"
        )
    try:
        sizes = tuple(int(n) for n in arrays["level_sizes"])
        levels = range(len(sizes))
        up_index, up_weight = [], []
        for l in levels[:-1]:
            idx, w = _coo_to_rows(arrays[f"up_{l}_rows"], arrays[f"up_{l}_cols"],
                                  arrays[f"up_{l}_vals"], sizes[l])
            up_index.append(idx)
            up_weight.append(w)
        h = MeshHierarchy(
            level_sizes=sizes,
            vertices=[arrays[f"vertices_{l}"].astype(np.float32) for l in levels],
            faces=[arrays[f"faces_{l}"].astype(np.int32) for l in levels],
            spirals=[arrays[f"spiral_{l}"].astype(np.int32) for l in levels],
            down=[arrays[f"down_{l}"].astype(np.int32) for l in levels[:-1]],
            up_index=up_index,
            up_weight=up_weight,
            spiral_length=tuple(int(n) for n in arrays["spiral_length"]),
            dilation=tuple(int(n) for n in arrays["dilation"]),
            source_sha256=stored,
        )
    except KeyError as exc:
        raise WeightsError(f"Mesh hierarchy file {path} lacks {exc}. {REBUILD_HINT}") from exc
    _check_shapes(h, path)
    return h


def _coo_to_rows(rows, cols, vals, n_rows):
    """COO triplets with exactly 3 entries per row -> (n_rows, 3) index and weight arrays."""
    rows = np.asarray(rows, np.int64)
    if len(rows) != 3 * n_rows or np.any(np.bincount(rows, minlength=n_rows) != 3):
        raise WeightsError(f"Up-sampling matrix must have exactly 3 entries per row. {REBUILD_HINT}")
    order = np.argsort(rows, kind="stable")
    return (np.asarray(cols)[order].reshape(n_rows, 3).astype(np.int32),
            np.asarray(vals)[order].reshape(n_rows, 3).astype(np.float32))


def _check_shapes(h: MeshHierarchy, path: Path) -> None:
    for l, n in enumerate(h.level_sizes):
        if h.vertices[l].shape != (n, 3) or h.spirals[l].shape[0] != n:
            raise WeightsError(f"Mesh hierarchy file {path}: level {l} arrays disagree with its size {n}. "
                               f"{REBUILD_HINT}")
        if l + 1 < h.num_levels and h.down[l].shape != (h.level_sizes[l + 1],):
            raise WeightsError(f"Mesh hierarchy file {path}: down_{l} has the wrong length. {REBUILD_HINT}")
