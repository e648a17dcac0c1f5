"""The add-on on each supported Blender release, and which release opens whose .blend.

`make test` runs this file on bpy 5.0 and again in the venvs of the older wheels (4.2 LTS,
4.5 LTS). The bake here is written without audio (samples decoded by core, keys written by the
add-on's bake writer), so the Action paths of blender_addon/compat.py (legacy on 4.2/4.3,
slotted on 4.4+) are exercised on the 4.2 wheel too, which has no audio. S2F_OTHER_BPY lists
the Python interpreters of other bpy wheels (`make test` sets it): each opens the .blend this
release wrote, and what happens must match tools/blend_versions.py's rule.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from tests.addon_helpers import ROOT, evaluated_vertices, import_addon, load_head, make_wav, reset_scene  # noqa: E402

import_addon()
from blender_addon import bake, compat  # noqa: E402
from core import compact  # noqa: E402
from core.pipeline import Animator  # noqa: E402
from tools import blend_versions  # noqa: E402

VERSION = tuple(bpy.app.version[:2])
FPS = 24
START = 11
CHECK_FRAMES = (START, START + 3, START + 7)


@pytest.fixture(scope="module")
def displacements(tmp_path_factory):
    """A real prediction (bundled weights) for 0.5 s of speech-like audio, decoded by core."""
    wav = make_wav(tmp_path_factory.mktemp("audio") / "line.wav", seconds=0.5, rate=16000)
    reset_scene()
    neutral = bake.neutral_vertices(load_head())
    anim = Animator.load(None, "hama", allow_random=True).animate(str(wav), neutral, fps=FPS)
    return anim.vertices - neutral[None]


def _user_action(head):
    """The user's own shape key, animated in their own Action (what the bake must keep)."""
    head.shape_key_add(name="Basis")
    mine = head.shape_key_add(name="Smile", from_mix=False)
    mine.value = 0.25
    mine.keyframe_insert("value", frame=1)
    mine.value = 0.75
    mine.keyframe_insert("value", frame=40)
    return mine


def test_action_api_matches_the_release(tmp_path):
    """Legacy Action.fcurves before 4.4, slots and channel bags from 4.4 on."""
    reset_scene()
    head = load_head()
    _user_action(head)
    action, slot = compat.assigned(head.data.shape_keys)
    assert compat.is_layered_api() == (VERSION >= (4, 4))
    assert (slot is None) == (VERSION < (4, 4))
    curves = compat.fcurves(action, slot, ensure=False)
    assert [fc.data_path for fc in curves] == ['key_blocks["Smile"].value']
    if VERSION >= (5, 0):
        assert not hasattr(action, "fcurves")  # 5.0 removed the legacy collection


def test_strip_collection_of_the_release():
    """compat lists and removes strips through `sequences` (4.2/4.3) or `strips` (4.5 has both,
    5.0 only `strips`). A colour strip needs no audio, so this runs on the 4.2 wheel too."""
    scene = reset_scene()
    se = scene.sequence_editor_create()
    if VERSION < (4, 4):
        assert not hasattr(se, "strips")  # compat must take the `sequences` path here
    if VERSION >= (5, 0):
        assert not hasattr(se, "sequences")
    top = se.strips if hasattr(se, "strips") else se.sequences
    try:
        strip = top.new_effect(name="Colour", type="COLOR", channel=2, frame_start=5, length=10)
    except TypeError:  # before 4.4 the end frame is given instead of the length
        strip = top.new_effect(name="Colour", type="COLOR", channel=2, frame_start=5, frame_end=15)
    assert [s.name for s in compat.all_strips(scene)] == ["Colour"] and compat.sound_strips(scene) == []
    compat.remove_strip(scene, strip)
    assert compat.all_strips(scene) == []


@pytest.mark.parametrize("mode", ["PER_FRAME", "COMPACT"])
def test_bake_writer_on_this_release(displacements, mode):
    """Keys and curves written on this release reproduce the prediction; the user's Action,
    key and curve survive, and removing the bake leaves them as they were."""
    reset_scene()
    bpy.context.scene.render.fps = FPS
    head = load_head()
    _user_action(head)
    user_action, _ = compat.assigned(head.data.shape_keys)
    neutral = bake.neutral_vertices(head)
    if mode == "PER_FRAME":
        record = bake.write_bake(head, start_frame=START, displacements=displacements)
        expected, tol = displacements, 1e-5
    else:
        basis = compact.fit_compact(displacements, compact.default_tolerance(neutral))
        record = bake.write_bake(head, start_frame=START, compact_basis=basis)
        expected, tol = displacements, basis.bound + 1e-5
    assert record["mode"] == mode and record["frames"] == len(displacements)
    assert compat.assigned(head.data.shape_keys)[0] == user_action  # baked into the user's Action
    for frame in CHECK_FRAMES:  # "Smile" has Basis' coordinates: its animation adds no offset
        got = evaluated_vertices(head, frame)
        assert np.abs(got - (neutral + expected[frame - START])).max() < tol, frame
    bake.remove_take(head)
    names = [kb.name for kb in head.data.shape_keys.key_blocks]
    assert names == ["Basis", "Smile"]
    curves = compat.fcurves(*compat.assigned(head.data.shape_keys), ensure=False)
    assert [fc.data_path for fc in curves] == ['key_blocks["Smile"].value']
    assert [tuple(p.co) for p in curves[0].keyframe_points] == [(1.0, 0.25), (40.0, 0.75)]


_READER = r"""
import json, os, sys
import bpy
import numpy as np
out = {"version": list(bpy.app.version[:2])}
try:
    bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
    out["opened"] = True
except Exception as exc:
    out["opened"], out["error"] = False, str(exc).strip().splitlines()[-1]
if out["opened"]:
    obj = bpy.data.objects["Head"]
    out["keys"] = len(obj.data.shape_keys.key_blocks)
    out["vertices"] = {}
    for f in json.loads(sys.argv[2]):
        bpy.context.scene.frame_set(f)
        mesh = obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
        co = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", co)
        out["vertices"][str(f)] = co.tolist()
print("RESULT " + json.dumps(out), flush=True)
os._exit(0)  # bpy 4.3 segfaults at interpreter exit; the result is already out
"""


def _other_pythons():
    def venv(python):  # venv interpreters are symlinks to one binary: compare their environments
        return os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(python))))
    return [p for p in os.environ.get("S2F_OTHER_BPY", "").split() if venv(p) != os.path.realpath(sys.prefix)]


@pytest.mark.skipif(not _other_pythons(), reason="no other bpy wheel given (S2F_OTHER_BPY; `make test` sets it)")
@pytest.mark.parametrize("reader", _other_pythons() or ["none"])
def test_other_release_opens_this_releases_blend_as_stated(displacements, reader, tmp_path):
    reset_scene()
    bpy.context.scene.render.fps = FPS
    head = load_head()
    bake.write_bake(head, start_frame=START, displacements=displacements)
    written = {str(f): evaluated_vertices(head, f) for f in CHECK_FRAMES}
    keys = len(head.data.shape_keys.key_blocks)
    path = tmp_path / f"written_by_{VERSION[0]}_{VERSION[1]}.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    assert blend_versions.read_header(path)["version"] == VERSION

    script = tmp_path / "reader.py"
    script.write_text(_READER)
    done = subprocess.run([reader, str(script), str(path), json.dumps(CHECK_FRAMES)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(line[len("RESULT "):])
    reader_version = tuple(result["version"])
    assert result["opened"] == blend_versions.opens_in(VERSION, reader_version), (VERSION, reader_version, result)
    if result["opened"]:  # the animation comes through unchanged
        assert result["keys"] == keys
        for f, co in written.items():
            got = np.asarray(result["vertices"][f], np.float32).reshape(-1, 3)
            assert np.abs(got - co).max() < 1e-6, (f, reader_version)
    else:
        assert "not a blend file" in result["error"] or "header" in result["error"], result["error"]


def test_blend_versions_tool_tells_what_opens_it(tmp_path):
    reset_scene()
    path = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "blend_versions.py"), str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"written by Blender {VERSION[0]}.{VERSION[1]}" in done.stdout
    if VERSION >= (5, 0):
        assert "Does NOT open in Blender 4.2 LTS - 4.4" in done.stdout and "bpy==4.5" in done.stdout
    else:
        assert "Opens in Blender 4.2 LTS and newer" in done.stdout
