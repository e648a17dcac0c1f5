"""Releases: one version everywhere with its CHANGELOG entry, and a reproducible zip (built
twice from the same checkout, in different time zones, with a source file's date changed in
between, it has the same bytes)."""

from __future__ import annotations

import os
import subprocess
import re
import sys
import tomllib
import zipfile

from tests.addon_helpers import ROOT

TOOL = ROOT / "tools" / "build_extension.py"


def _build(out, **env):
    full = dict(os.environ)
    full.update(env)
    done = subprocess.run([sys.executable, str(TOOL), "--out", str(out), "--no-validate"], capture_output=True,
                          text=True, env=full, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    (zip_path,) = out.glob("speech_to_face-*.zip")
    return zip_path


def test_same_inputs_same_bytes(tmp_path):
    first = _build(tmp_path / "a", TZ="UTC", SOURCE_DATE_EPOCH="")
    source = ROOT / "core" / "errors.py"  # a newer file date must not change the zip
    stat = source.stat()
    try:
        os.utime(source, (stat.st_atime, stat.st_mtime + 3600))
        second = _build(tmp_path / "b", TZ="America/New_York", SOURCE_DATE_EPOCH="")
    finally:
        os.utime(source, (stat.st_atime, stat.st_mtime))
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as z:
        infos = z.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(2026, 1, 1, 0, 0, 0)}


def test_source_date_epoch_sets_the_dates(tmp_path):
    path = _build(tmp_path / "c", SOURCE_DATE_EPOCH="1780000000")  # 2026-05-28 20:26:40 UTC
    with zipfile.ZipFile(path) as z:
        assert {i.date_time for i in z.infolist()} == {(2026, 5, 28, 20, 26, 40)}


def test_one_version_with_a_changelog_entry():
    import core
    manifest = tomllib.loads((ROOT / "blender_manifest.toml").read_text(encoding="utf-8"))["version"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert manifest == project == core.__version__
    headings = re.findall(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.M)
    assert headings and headings[0] == manifest, "the newest CHANGELOG section must be the current version"
