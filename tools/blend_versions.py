"""Which Blender releases open a .blend file, read from the file's header (no bpy needed).

    python tools/blend_versions.py out/demo.blend [more.blend ...]

A .blend records the Blender version that wrote it. Blender opens files from older releases,
and files from newer ones with a warning ("File written by newer Blender binary, expect loss
of data"), except across the header change of Blender 5.0: a .blend written by 5.0 or later
opens in 4.5 LTS and newer but not in 4.2 LTS - 4.4 ("not a blend file"). So a headless bake
made with the bpy 5.0 wheel is for Blender 4.5+; for 4.2 - 4.4 bake with that Blender or with
the bpy 4.5 LTS wheel. tests/test_blender_versions.py checks these rules against the bpy
wheels it is given (a baked file written by each, opened by each, animation compared).
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
from pathlib import Path

OLDEST_SUPPORTED = (4, 2)      # the add-on's blender_version_min
NEW_HEADER_FROM = (5, 0)       # the .blend header changed in 5.0 ...
NEW_HEADER_READERS = (4, 5)    # ... and 4.5 LTS learned to read it
LTS = {(4, 2), (4, 5)}
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"


def _first_bytes(path: Path, n: int = 64) -> tuple[bytes, str]:
    """The first n bytes of the .blend after decompression, and the compression used."""
    with open(path, "rb") as fh:
        head = fh.read(n)
    if head.startswith(ZSTD_MAGIC):
        try:
            import zstandard  # installed with every bpy wheel
        except ImportError:
            raise SystemExit(f"error: {path} is zstd-compressed; `pip install zstandard` to read its header")
        with open(path, "rb") as fh, zstandard.ZstdDecompressor().stream_reader(fh) as reader:
            return reader.read(n), "zstd"
    if head.startswith(GZIP_MAGIC):
        with gzip.open(path, "rb") as fh:
            return fh.read(n), "gzip"
    return head, ""


def read_header(path) -> dict:
    """{"version": (major, minor), "new_header": bool, "compression": str} of a .blend file."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"error: no such file: {path}")
    head, compression = _first_bytes(path)
    # 5.0+: BLENDER17-01v0500 (header size, format version, 4-digit version); before: BLENDER-v405
    m = re.match(rb"BLENDER(\d\d)-(\d\d)v(\d{4})", head)
    if m:
        v = int(m.group(3))
        return {"version": (v // 100, v % 100), "new_header": True, "compression": compression}
    m = re.match(rb"BLENDER[-_][vV](\d{3})", head)
    if m:
        v = int(m.group(1))
        return {"version": (v // 100, v % 100), "new_header": False, "compression": compression}
    raise SystemExit(f"error: {path} is not a .blend file (header {head[:12]!r})")


def opens_in(written: tuple, reader: tuple) -> bool:
    """Does Blender ``reader`` (major, minor) open a file written by Blender ``written``?"""
    if tuple(reader[:2]) >= tuple(written[:2]):
        return True
    if tuple(written[:2]) >= NEW_HEADER_FROM:
        return tuple(reader[:2]) >= NEW_HEADER_READERS
    return True  # older releases read newer 4.x files, warning about possible loss of data


def _name(v: tuple) -> str:
    return f"{v[0]}.{v[1]}" + (" LTS" if tuple(v[:2]) in LTS else "")


def describe(path) -> str:
    info = read_header(path)
    written = info["version"]
    comp = f", {info['compression']}-compressed" if info["compression"] else ""
    lines = [f"{path}: written by Blender {_name(written)}{comp}."]
    if written >= NEW_HEADER_FROM:
        lines.append(f"  Opens in Blender {_name(NEW_HEADER_READERS)} and newer"
                     + (f" ({_name(NEW_HEADER_READERS)} warns that the file is from a newer Blender)."
                        if written > NEW_HEADER_READERS else "."))
        lines.append(f"  Does NOT open in Blender {_name(OLDEST_SUPPORTED)} - 4.4: Blender {_name(NEW_HEADER_FROM)} "
                     "changed the .blend header (they report 'not a blend file').")
        lines += ["  For Blender 4.2 LTS - 4.4, bake with that Blender itself (same options):",
                  "    blender -b -P tools/bake.py -- --mesh HEAD.ply --audio SPEECH.wav --out OUT.blend",
                  "  or with the bpy 4.5 LTS wheel in its own venv (its files open in 4.2 LTS and newer):",
                  "    python3.11 -m venv .venv-bpy4.5 && .venv-bpy4.5/bin/pip install bpy==4.5.15 soundfile hama==1.7.0",
                  "    .venv-bpy4.5/bin/python tools/bake.py --mesh HEAD.ply --audio SPEECH.wav --out OUT.blend"]
    else:
        oldest = max(OLDEST_SUPPORTED, (0, 0))
        lines.append(f"  Opens in Blender {_name(oldest)} and newer"
                     + (f" (releases before {_name(written)} warn that the file is from a newer Blender)."
                        if written > oldest else "."))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("blend", nargs="+", help=".blend files")
    args = ap.parse_args(argv)
    for path in args.blend:
        print(describe(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
