"""Minimal PLY and OBJ reading/writing with numpy only (no trimesh inside Blender)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import TopologyError

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


def read_mesh(path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (N, 3) float64 and triangles (F, 3) int64 of a .ply or .obj file."""
    path = Path(path)
    if not path.is_file():
        raise TopologyError(f"Mesh file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".ply", ".obj"):
        raise TopologyError(f"Unsupported mesh format '{suffix}' for {path.name}: use .ply or .obj.")
    try:
        vertices, faces = _read_ply(path) if suffix == ".ply" else _read_obj(path)
    except OSError as exc:
        raise TopologyError(f"Cannot read mesh {path}: {exc.strerror or exc}.") from None
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        if isinstance(exc, TopologyError):
            raise
        raise TopologyError(f"{path.name} is not a valid {suffix[1:].upper()} file ({exc}).") from None
    # Blender would silently turn NaN/inf into 0 when the mesh is created: refuse them here.
    bad = ~np.isfinite(vertices).all(axis=1)
    if bad.any():
        first = np.flatnonzero(bad)[:5].tolist()
        raise TopologyError(f"{path.name} has {int(bad.sum())} vertices with NaN or infinite coordinates "
                            f"(e.g. vertex {first}).")
    return vertices, faces


def _read_ply(path: Path):
    with open(path, "rb") as fh:
        if fh.readline().strip() != b"ply":
            raise TopologyError(f"{path.name} is not a PLY file.")
        fmt, elements = None, []
        while True:
            line = fh.readline()
            if not line:
                raise TopologyError(f"{path.name}: PLY header has no end_header.")
            words = line.decode("ascii", "replace").split()
            if not words:
                continue
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                if len(words) != 3 or not words[2].isdigit():
                    raise TopologyError(f"{path.name}: bad PLY header line '{' '.join(words)}' "
                                        "(expected: element <name> <count>).")
                elements.append([words[1], int(words[2]), []])
            elif words[0] == "property":
                if not elements:
                    raise TopologyError(f"{path.name}: PLY header has a property before any element.")
                elements[-1][2].append(words[1:])
            elif words[0] == "end_header":
                break
        body = fh.read()
    vertices = faces = None
    if fmt == "ascii":
        tokens = body.split()
        pos = 0
        for name, count, props in elements:
            rows = []
            for _ in range(count):
                row = []
                for prop in props:
                    if prop[0] == "list":
                        n = int(tokens[pos]); pos += 1
                        row.append([int(t) for t in tokens[pos:pos + n]]); pos += n
                    else:
                        row.append(float(tokens[pos])); pos += 1
                rows.append(row)
            if name == "vertex":
                names = [p[-1] for p in props]
                vertices = np.array([[r[names.index(a)] for a in "xyz"] for r in rows], np.float64)
            elif name == "face":
                faces = [r[0] for r in rows]
    elif fmt in ("binary_little_endian", "binary_big_endian"):
        endian = "<" if fmt == "binary_little_endian" else ">"
        pos = 0
        for name, count, props in elements:
            if all(p[0] != "list" for p in props):
                dtype = np.dtype([(p[1], endian + _PLY_TYPES[p[0]]) for p in props])
                _check_size(body, pos, dtype.itemsize * count, path)
                arr = np.frombuffer(body, dtype, count, pos)
                pos += dtype.itemsize * count
                if name == "vertex":
                    vertices = np.stack([arr[a].astype(np.float64) for a in "xyz"], axis=1)
            elif name == "face" and len(props) == 1:
                count_t, index_t = _PLY_TYPES[props[0][1]], _PLY_TYPES[props[0][2]]
                # Fast path: every face a triangle.
                rec = np.dtype([("n", endian + count_t), ("i", endian + index_t, (3,))])
                _check_size(body, pos, rec.itemsize * count, path)
                arr = np.frombuffer(body, rec, count, pos)
                if (arr["n"] == 3).all():
                    faces = arr["i"].astype(np.int64)
                    pos += rec.itemsize * count
                else:
                    raise TopologyError(f"{path.name}: only triangle faces are supported (FLAME is triangulated).")
            else:
                raise TopologyError(f"{path.name}: unsupported PLY element layout '{name}'.")
    else:
        raise TopologyError(f"{path.name}: unknown PLY format '{fmt}'.")
    if vertices is None:
        raise TopologyError(f"{path.name} has no vertices.")
    faces_arr = np.zeros((0, 3), np.int64) if faces is None else _triangles(faces, path)
    return vertices, faces_arr


def _check_size(body: bytes, pos: int, need: int, path: Path) -> None:
    if len(body) < pos + need:
        raise TopologyError(f"{path.name} is truncated: its header announces {pos + need} bytes of data, "
                            f"the file holds {len(body)}.")


def _triangles(faces, path: Path) -> np.ndarray:
    if isinstance(faces, np.ndarray):
        return faces
    if any(len(f) != 3 for f in faces):
        raise TopologyError(f"{path.name}: only triangle faces are supported (FLAME is triangulated).")
    return np.asarray(faces, np.int64).reshape(-1, 3)


def _read_obj(path: Path):
    verts, faces = [], []
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            words = line.split()   # any whitespace: spaces or tabs
            if not words or words[0] not in ("v", "f"):
                continue
            try:
                if words[0] == "v":
                    verts.append([float(t) for t in words[1:4]])
                    if len(verts[-1]) != 3:
                        raise ValueError("a vertex needs x y z")
                else:
                    idx = [int(t.split("/")[0]) for t in words[1:]]
                    faces.append([i - 1 if i > 0 else len(verts) + i for i in idx])
            except ValueError as exc:
                raise TopologyError(f"{path.name} line {number}: cannot read '{line.strip()[:60]}' ({exc}).") from None
    if not verts:
        raise TopologyError(f"{path.name} has no vertices.")
    return np.asarray(verts, np.float64), _triangles(faces, path)


def write_ply(path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Binary little-endian PLY, the format Blender and most tools read fastest."""
    v = np.asarray(vertices, "<f4")
    f = np.asarray(faces)
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(v)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(f)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    rec = np.zeros(len(f), np.dtype([("n", "u1"), ("i", "<i4", (3,))]))
    rec["n"] = 3
    rec["i"] = f
    with open(path, "wb") as fh:
        fh.write(header.encode("ascii"))
        fh.write(v.tobytes())
        fh.write(rec.tobytes())


def write_obj(path, vertices: np.ndarray, faces: np.ndarray) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for x, y, z in np.asarray(vertices, np.float64):
            fh.write(f"v {x:.9g} {y:.9g} {z:.9g}\n")
        for a, b, c in np.asarray(faces) + 1:
            fh.write(f"f {a} {b} {c}\n")
