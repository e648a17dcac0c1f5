"""Build the installable Blender extension zip.

    python tools/build_extension.py [--out dist] [--wheels-dir build/wheels]
    python tools/build_extension.py --report docs/benchmarks/extension.json   # + the size the README cites

Zip layout (the add-on package root, as Blender installs it):

    blender_manifest.toml
    __init__.py, panel.py, ...      <- blender_addon/*
    core/                           <- the core package, without core/corpus (training only)
    weights/                        <- trained networks + manifest (what is in weights/)
    wheels/hama-1.7.0-py3-none-any.whl

The add-on imports ``from . import core``, so the vendored core is used, never another copy.
The zip is reproducible: the same inputs give the same bytes (entries sorted by name, every
timestamp set to SOURCE_DATE_EPOCH or 2026-01-01, fixed permissions and compression), so a
release zip can be rebuilt from its tag and compared.
The zip is made by Blender's own extension builder (``blender_ext.py build`` from the bpy
wheel) and then checked with its validator; hama's wheel comes from PyPI via ``pip download``
(cached in --wheels-dir). One universal zip serves every platform: hama's wheel is
``py3-none-any`` for Python 3.11 and 3.13 alike and carries its own native libraries.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "blender_manifest.toml"
SKIP_DIRS = {"__pycache__", "corpus", ".pytest_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo"}


def find_blender_ext() -> Path | None:
    """Blender's extension command-line tool inside the bpy wheel (found without importing bpy)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    base = Path(list(spec.submodule_search_locations)[0])
    hits = sorted(glob.glob(str(base / "*" / "scripts" / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py")))
    return Path(hits[-1]) if hits else None


def ensure_wheels(manifest: dict, wheels_dir: Path) -> list[Path]:
    """The wheels the manifest lists, downloaded from PyPI once and cached."""
    wheels_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for rel in manifest.get("wheels", []):
        name = Path(rel).name
        path = wheels_dir / name
        if not path.is_file():
            dist, version = name.split("-")[:2]
            for py in ("3.11", "3.13"):  # Blender 4.2-5.0 ship 3.11; later releases 3.13
                cmd = [sys.executable, "-m", "pip", "download", f"{dist}=={version}", "--no-deps",
                       "--only-binary=:all:", "--python-version", py, "-d", str(wheels_dir), "-q"]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    raise SystemExit(f"error: cannot download {name} from PyPI (needed for the zip):\n"
                                     f"{done.stderr.strip()}\nPut the file in {wheels_dir} and rerun.")
            if not path.is_file():
                raise SystemExit(f"error: pip did not produce {name}; the manifest's wheel name is out of date.")
        out.append(path)
    return out


def _copy_tree(src: Path, dst: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        rel = Path(dirpath).relative_to(src)
        for f in sorted(filenames):
            if f.startswith(".") or Path(f).suffix in SKIP_SUFFIXES:
                continue
            (dst / rel).mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(dirpath) / f, dst / rel / f)


def stage(stage_dir: Path, wheels: list[Path]) -> Path:
    """The package directory exactly as it will sit in Blender's extensions folder."""
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True)
    shutil.copy2(MANIFEST, stage_dir / MANIFEST.name)
    _copy_tree(ROOT / "blender_addon", stage_dir)
    _copy_tree(ROOT / "core", stage_dir / "core")
    (stage_dir / "weights").mkdir(exist_ok=True)
    if (ROOT / "weights").is_dir():
        _copy_tree(ROOT / "weights", stage_dir / "weights")
    for extra in ("LICENSE", "LICENSE.md", "NOTICE.md"):
        if (ROOT / extra).is_file():
            shutil.copy2(ROOT / extra, stage_dir / extra)
    (stage_dir / "wheels").mkdir(exist_ok=True)
    for w in wheels:
        shutil.copy2(w, stage_dir / "wheels" / w.name)
    return stage_dir


FIXED_EPOCH = 1767225600  # 2026-01-01 00:00:00 UTC: the zip's timestamps unless SOURCE_DATE_EPOCH is set


def _zip_time() -> tuple:
    epoch = max(int(os.environ.get("SOURCE_DATE_EPOCH") or FIXED_EPOCH), 315532800)  # zip starts in 1980
    return time.gmtime(epoch)[:6]


def _zip_dir(src: Path, dst: Path) -> None:
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(src).as_posix())


def make_reproducible(zip_path: Path) -> None:
    """Rewrite the zip with sorted entries, one timestamp, fixed modes: same inputs, same bytes
    (file dates, umask, time zone and the builder's walk order drop out)."""
    stamp = _zip_time()
    with zipfile.ZipFile(zip_path) as src:
        entries = sorted(((i.filename, src.read(i)) for i in src.infolist()), key=lambda e: e[0])
    tmp = zip_path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w") as dst:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.create_system = 3  # Unix, so the modes below are read
            info.external_attr = ((0o40755 if name.endswith("/") else 0o100644) << 16) | (0x10 if name.endswith("/") else 0)
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, data, compresslevel=9)
    os.replace(tmp, zip_path)


def build(out_dir: Path, wheels_dir: Path, validate: bool = True) -> Path:
    manifest = tomllib.loads(MANIFEST.read_text(encoding="utf-8"))
    wheels = ensure_wheels(manifest, wheels_dir)
    staged = stage(ROOT / "build" / "extension" / manifest["id"], wheels)
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / f"{manifest['id']}-{manifest['version']}.zip"
    if zip_path.exists():
        zip_path.unlink()
    tool = find_blender_ext()
    if tool is not None:
        done = subprocess.run([sys.executable, str(tool), "build", "--source-dir", str(staged),
                               "--output-dir", str(out_dir)], capture_output=True, text=True)
        if done.returncode != 0 or not zip_path.is_file():
            raise SystemExit(f"error: Blender's extension build failed:\n{done.stdout}{done.stderr}")
    else:  # no bpy wheel here: same layout, plain zip (validate it in Blender before publishing)
        print("note: bpy wheel not found; zipping without Blender's builder/validator")
        _zip_dir(staged, zip_path)
    make_reproducible(zip_path)
    if validate and tool is not None:
        done = subprocess.run([sys.executable, str(tool), "validate", str(zip_path)], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"error: the built zip does not validate:\n{done.stdout}{done.stderr}")
    return zip_path


def size_report(zip_path: Path) -> dict:
    """Size of the zip and, compressed, of its parts (top-level folders; files at the top together)."""
    parts: dict = {}
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            top = info.filename.split("/", 1)[0] if "/" in info.filename else "(top level)"
            parts[top] = parts.get(top, 0) + info.compress_size
    return {"zip": zip_path.name, "zip_mb": round(zip_path.stat().st_size / 1e6, 1),
            "compressed_mb_by_folder": {k: round(v / 1e6, 2) for k, v in sorted(parts.items())}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    ap.add_argument("--wheels-dir", type=Path, default=ROOT / "build" / "wheels",
                    help="cache of wheels to bundle (default: build/wheels/)")
    ap.add_argument("--no-validate", action="store_true", help="skip Blender's validator")
    ap.add_argument("--report", type=Path,
                    help="also write the zip's size and what takes the room as JSON (docs/benchmarks/extension.json)")
    args = ap.parse_args(argv)
    path = build(args.out, args.wheels_dir, validate=not args.no_validate)
    size = path.stat().st_size / 1e6
    print(f"built {path} ({size:.1f} MB)")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(size_report(path), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.report}")
    print(f"install: Blender > Edit > Preferences > Get Extensions > Install from Disk... > {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
