"""The real packaged extension: build the zip, validate it with Blender's validator, install it
into a temporary user repository of the bpy 5.0.1 wheel, bake with it, and unregister."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile

import pytest

from tests.addon_helpers import HEAD, PYTHON, ROOT, make_wav

from tests.addon_helpers import import_bpy  # noqa: E402

import_bpy()
sys.path.insert(0, str(ROOT / "tools"))
import build_extension  # noqa: E402


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    return build_extension.build(out, ROOT / "build" / "wheels")


def _validate(path):
    tool = build_extension.find_blender_ext()
    assert tool is not None, "bl_pkg's blender_ext.py must ship inside the bpy wheel"
    return subprocess.run([PYTHON, str(tool), "validate", str(path)], capture_output=True, text=True)


def test_manifest_and_zip_validate(built_zip):
    staged = ROOT / "build" / "extension" / "speech_to_face"
    for target in (staged, built_zip):
        done = _validate(target)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Success" in done.stdout
    import tomllib
    manifest = tomllib.loads((ROOT / "blender_manifest.toml").read_text())
    assert manifest["blender_version_min"] == "4.2.0"
    assert manifest["type"] == "add-on" and manifest["id"] == "speech_to_face"


def test_zip_layout(built_zip):
    names = set(zipfile.ZipFile(built_zip).namelist())
    assert {"blender_manifest.toml", "__init__.py", "operators.py", "panel.py", "bake.py",
            "core/__init__.py", "core/pipeline.py", "core/compact.py", "core/assets/flame_topology.npz",
            "wheels/hama-1.7.0-py3-none-any.whl"} <= names
    assert not any(n.startswith("core/corpus") for n in names), "training-only corpus code must stay out"
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert not any(n.startswith(("tests/", "tools/", "blender_addon/")) for n in names)
    # The trained weights ship inside, byte for byte as the manifest records them.
    import hashlib
    from core import weights
    manifest = weights.read_manifest(weights.DEFAULT_DIR)
    assert {"s2d", "s2l_hama", "s2l_mel"} <= set(manifest["networks"])
    with zipfile.ZipFile(built_zip) as z:
        assert json.loads(z.read("weights/manifest.json")) == manifest
        for name, entry in manifest["networks"].items():
            assert entry["trained"], name
            assert hashlib.sha256(z.read(f"weights/{entry['file']}")).hexdigest() == entry["sha256"], name
            if "log" in entry:
                assert hashlib.sha256(z.read(f"weights/{entry['log']}")).hexdigest() == entry["log_sha256"], name


def test_size_report(built_zip):
    report = build_extension.size_report(built_zip)
    assert report["zip_mb"] == round(built_zip.stat().st_size / 1e6, 1)
    parts = report["compressed_mb_by_folder"]
    assert {"core", "weights", "wheels"} <= set(parts)
    assert abs(sum(parts.values()) - built_zip.stat().st_size / 1e6) < 0.05 * report["zip_mb"]


INSTALL_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import bpy, addon_utils
    zip_path, repo_dir, head, wav = sys.argv[1:5]
    bpy.ops.preferences.extension_repo_add(name="s2f_test", type="LOCAL",
                                           custom_directory=repo_dir, use_custom_directory=True)
    repo = bpy.context.preferences.extensions.repos[-1]
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo=repo.module, enable_on_install=True)
    module = f"bl_ext.{repo.module}.speech_to_face"
    out = {"enabled": module in bpy.context.preferences.addons.keys()}
    out["panel"] = hasattr(bpy.types, "SPEECHTOFACE_PT_main")
    out["scene_props"] = hasattr(bpy.types.Scene, "speech_to_face")
    pkg = sys.modules[module]
    api = sys.modules[module + ".api"] if module + ".api" in sys.modules else __import__(module + ".api", fromlist=["api"])
    engine = sys.modules[module + ".engine"]
    out["core_file"] = engine.core.__file__
    out["core_name"] = engine.core.__name__
    bpy.context.scene.render.fps = 25
    obj = api.load_head(head, name="Head")
    bpy.context.view_layer.objects.active = obj
    props = bpy.context.scene.speech_to_face
    props.audio_source = "FILE"
    props.audio_file = wav
    props.audio_frame = 7
    out["bake"] = sorted(bpy.ops.speech_to_face.bake())
    rec = api.takes(obj)["main"]
    out["start"] = rec["start_frame"]
    out["frames"] = rec["frames"]
    out["keys"] = len(obj.data.shape_keys.key_blocks)
    out["upper_keys"] = len(rec["upper_face_keys"])
    out["trained"] = rec["trained"]
    bpy.ops.preferences.addon_disable(module=module)
    out["after_disable_panel"] = hasattr(bpy.types, "SPEECHTOFACE_PT_main")
    out["after_disable_props"] = hasattr(bpy.types.Scene, "speech_to_face")
    print("RESULT " + json.dumps(out))
""")


@pytest.mark.needs_audio
def test_install_register_bake_unregister(built_zip, tmp_path):
    script = tmp_path / "install.py"
    script.write_text(INSTALL_SCRIPT)
    wav = make_wav(tmp_path / "line.wav", seconds=1.0)
    env = {"BLENDER_USER_RESOURCES": str(tmp_path / "user")}
    import os
    done = subprocess.run([PYTHON, str(script), str(built_zip), str(tmp_path / "repo"), str(HEAD), str(wav)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, **env},
                          cwd=str(tmp_path))
    lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    out = json.loads(lines[-1][7:])
    assert out["enabled"] and out["panel"] and out["scene_props"]
    # The vendored core inside the installed extension is the one in use.
    assert out["core_name"].endswith("speech_to_face.core")
    assert str(tmp_path / "repo" / "speech_to_face" / "core") in out["core_file"]
    assert out["bake"] == ["FINISHED"]
    # basis + one key per frame + the upper-face layer's keys (blinks, brows), installed from the zip
    assert out["start"] == 7 and out["frames"] == 25 and out["upper_keys"] > 0
    assert out["keys"] == 26 + out["upper_keys"]
    assert out["trained"] is True  # the installed extension bakes with the trained weights it ships
    assert not out["after_disable_panel"] and not out["after_disable_props"]
