"""A tiny CPU rasteriser (numpy only) for preview images of FLAME meshes: z-buffered, flat
Lambert shading, orthographic front or profile view, written as PNG without extra packages."""

from __future__ import annotations

import struct
import zlib

import numpy as np

VIEWS = {
    # rows of a rotation taking template coordinates (Y up, face +Z) to (screen x, screen y, depth)
    "front": np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]),
    "profile": np.array([[0, 0, 1.0], [0, 1.0, 0], [-1.0, 0, 0]]),  # the face's right side, looking +Z to the right
}


def render(vertices: np.ndarray, faces: np.ndarray, view: str = "front", size: int = 256,
           center=None, extent: float = 0.26, colors=None) -> np.ndarray:
    """(size, size, 3) uint8 image. ``extent`` is the visible width in metres around ``center``.
    ``colors``: optional (V, 3) per-vertex base colour in [0, 1]."""
    r = VIEWS[view]
    v = np.asarray(vertices, np.float64) @ r.T
    c = np.zeros(3) if center is None else np.asarray(center, np.float64) @ r.T
    px = (v[:, 0] - c[0]) / extent * size + size / 2
    py = size / 2 - (v[:, 1] - c[1]) / extent * size
    tri = v[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-20
    light = np.array([0.3, 0.4, 1.0]); light /= np.linalg.norm(light)
    shade = 0.25 + 0.75 * np.abs(n @ light)
    base = np.full((len(faces), 3), 0.85) if colors is None else np.asarray(colors)[faces].mean(axis=1)
    col = base * shade[:, None]
    col[n[:, 2] < 0] = np.array([0.35, 0.08, 0.1]) * shade[n[:, 2] < 0, None]  # inside (mouth): dark red
    img = np.ones((size, size, 3)) * np.array([0.12, 0.12, 0.14])
    zbuf = np.full((size, size), -np.inf)
    X, Y, Z = px[faces], py[faces], v[:, 2][faces]
    for i in np.argsort(Z.mean(axis=1)):
        x0, x1 = int(max(np.floor(X[i].min()), 0)), int(min(np.ceil(X[i].max()), size - 1))
        y0, y1 = int(max(np.floor(Y[i].min()), 0)), int(min(np.ceil(Y[i].max()), size - 1))
        if x1 < x0 or y1 < y0:
            continue
        gx, gy = np.meshgrid(np.arange(x0, x1 + 1) + 0.5, np.arange(y0, y1 + 1) + 0.5)
        (ax, bx, cx), (ay, by, cy) = X[i], Y[i]
        det = (by - cy) * (ax - cx) + (cx - bx) * (ay - cy)
        if abs(det) < 1e-12:
            continue
        w0 = ((by - cy) * (gx - cx) + (cx - bx) * (gy - cy)) / det
        w1 = ((cy - ay) * (gx - cx) + (ax - cx) * (gy - cy)) / det
        w2 = 1 - w0 - w1
        inside = (w0 >= -1e-6) & (w1 >= -1e-6) & (w2 >= -1e-6)
        z = w0 * Z[i, 0] + w1 * Z[i, 1] + w2 * Z[i, 2]
        sub = zbuf[y0:y1 + 1, x0:x1 + 1]
        upd = inside & (z > sub)
        sub[upd] = z[upd]
        img[y0:y1 + 1, x0:x1 + 1][upd] = col[i]
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def draw_points(img: np.ndarray, points: np.ndarray, view: str, size: int, center=None, extent=0.26,
                color=(255, 60, 60), radius: int = 1) -> np.ndarray:
    r = VIEWS[view]
    p = np.asarray(points, np.float64) @ r.T
    c = np.zeros(3) if center is None else np.asarray(center, np.float64) @ r.T
    px = ((p[:, 0] - c[0]) / extent * size + size / 2).astype(int)
    py = (size / 2 - (p[:, 1] - c[1]) / extent * size).astype(int)
    for x, y in zip(px, py):
        img[max(y - radius, 0):y + radius + 1, max(x - radius, 0):x + radius + 1] = color
    return img


def write_png(path, img: np.ndarray) -> None:
    img = np.ascontiguousarray(img, np.uint8)
    h, w = img.shape[:2]
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                 + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def label(img: np.ndarray, text: str) -> np.ndarray:
    """Draw ``text`` (A-Z, 0-9, a few symbols) with a 3x5 bitmap font at the top-left."""
    font = _FONT
    x = 3
    for ch in text.upper():
        glyph = font.get(ch, font[" "])
        for gy, row in enumerate(glyph):
            for gx, bit in enumerate(row):
                if bit == "1":
                    img[3 + gy * 2:5 + gy * 2, x + gx * 2:x + gx * 2 + 2] = 255
        x += 8
        if x > img.shape[1] - 8:
            break
    return img


_G = {
    " ": "000000000000000", "A": "010101111101101", "B": "110101110101110", "C": "011100100100011",
    "D": "110101101101110", "E": "111100110100111", "F": "111100110100100", "G": "011100101101011",
    "H": "101101111101101", "I": "111010010010111", "J": "001001001101010", "K": "101101110101101",
    "L": "100100100100111", "M": "101111111101101", "N": "110101101101101", "O": "010101101101010",
    "P": "110101110100100", "Q": "010101101110011", "R": "110101110101101", "S": "011100010001110",
    "T": "111010010010010", "U": "101101101101111", "V": "101101101101010", "W": "101101111111101",
    "X": "101101010101101", "Y": "101101010010010", "Z": "111001010100111", "0": "111101101101111",
    "1": "010110010010111", "2": "110001010100111", "3": "110001010001110", "4": "101101111001001",
    "5": "111100110001110", "6": "011100111101111", "7": "111001010010010", "8": "111101111101111",
    "9": "111101111001110", "-": "000000111000000", "_": "000000000000111", ".": "000000000000010",
    "/": "001001010100100", ":": "000010000010000", "=": "000111000111000", "+": "000010111010000", "@": "010101111100011",
}
_FONT = {k: [v[i:i + 3] for i in range(0, 15, 3)] for k, v in _G.items()}
