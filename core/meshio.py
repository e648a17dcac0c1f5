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
    if suffix == ".ply":
        return _read_ply(path)
    if suffix == ".obj":
        return _read_obj(path)
    raise TopologyError(f"Unsupported mesh format '{suffix}' for {path.name}: use .ply or .obj.")


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
                elements.append([words[1], int(words[2]), []])
            elif words[0] == "property":
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
                arr = np.frombuffer(body, dtype, count, pos)
                pos += dtype.itemsize * count
                if name == "vertex":
                    vertices = np.stack([arr[a].astype(np.float64) for a in "xyz"], axis=1)
            elif name == "face" and len(props) == 1:
                count_t, index_t = _PLY_TYPES[props[0][1]], _PLY_TYPES[props[0][2]]
                # Fast path: every face a triangle.
                rec = np.dtype([("n", endian + count_t), ("i", endian + index_t, (3,))])
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


def _triangles(faces, path: Path) -> np.ndarray:
    if isinstance(faces, np.ndarray):
        return faces
    if any(len(f) != 3 for f in faces):
        raise TopologyError(f"{path.name}: only triangle faces are supported (FLAME is triangulated).")
    return np.asarray(faces, np.int64).reshape(-1, 3)


def _read_obj(path: Path):
    verts, faces = [], []
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith("v "):
                verts.append([float(t) for t in line.split()[1:4]])
            elif line.startswith("f "):
                idx = [int(t.split("/")[0]) for t in line.split()[1:]]
                faces.append([i - 1 if i > 0 else len(verts) + i for i in idx])
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
