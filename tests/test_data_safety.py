"""Never lose the user's work: re-bakes and Remove Bake keep the user's own animation, .blend
files are written atomically (also by concurrent writers), batch outputs never collide, and
temporaries of a killed save are cleaned up. Runs on the installed bpy wheel (5.0.1 in CI;
the same file runs on the 4.2 wheel, whose Actions use the legacy API)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from tests.addon_helpers import ROOT, import_addon, load_head, make_wav, reset_scene, run_tool  # noqa: E402

import_addon()
from blender_addon import api, bake, compat, headless  # noqa: E402

BAKE = ROOT / "tools" / "bake.py"
BATCH = ROOT / "tools" / "batch_bake.py"
SMILE_PATH = 'key_blocks["Smile"].value'


def _has_aud() -> bool:
    try:
        import aud  # noqa: F401  (the 4.2 wheel is built without audio)
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    return make_wav(tmp_path_factory.mktemp("audio") / "speech.wav", seconds=1.0, rate=16000)


def _head_with_smile():
    reset_scene()
    head = load_head("Head")
    head.shape_key_add(name="Basis", from_mix=False)
    smile = head.shape_key_add(name="Smile", from_mix=False)
    co = np.empty(len(head.data.vertices) * 3, np.float32)
    smile.data.foreach_get("co", co)
    co[1::3] += 0.002
    smile.data.foreach_set("co", co)
    return head


def _key_smile(head, frames=(10, 20, 30)):
    smile = head.data.shape_keys.key_blocks["Smile"]
    for i, f in enumerate(frames):
        smile.value = 0.3 * (i + 1)
        smile.keyframe_insert("value", frame=f)


def _smile_keys(head):
    """((frame, value), ...) of the Smile F-curve in the shape keys' assigned Action, or None."""
    key = head.data.shape_keys
    action, slot = compat.assigned(key)
    if action is None:
        return None
    fcs = compat.fcurves(action, slot, ensure=False)
    fc = next((f for f in (fcs or []) if f.data_path == SMILE_PATH), None)
    return None if fc is None else tuple((round(p.co[0]), round(p.co[1], 4)) for p in fc.keyframe_points)


EXPECTED = ((10, 0.3), (20, 0.6), (30, 0.9))
needs_audio = pytest.mark.skipif(not _has_aud(), reason="this bpy wheel is built without audio")


def _write(head, mode, start_frame=1, take="main", own_action=None):
    """The bake writer with a fixed motion (no audio needed: also runs on the 4.2 wheel)."""
    from core import compact
    rng = np.random.default_rng(0)
    d = (rng.standard_normal((12, len(head.data.vertices), 3)) * 1e-3).astype(np.float32)
    if mode == "PER_FRAME":
        return bake.write_bake(head, start_frame=start_frame, displacements=d, take=take, own_action=own_action)
    return bake.write_bake(head, start_frame=start_frame, compact_basis=compact.fit_compact(d, 1e-4),
                           take=take, own_action=own_action)


@pytest.mark.parametrize("mode", ["PER_FRAME", "COMPACT"])
def test_rebake_and_remove_keep_animation_keyed_into_the_bake_action(mode):
    head = _head_with_smile()
    _write(head, mode)
    action_name = bake.takes(head)["main"]["action"]
    assert compat.assigned(head.data.shape_keys)[0].name == action_name
    _key_smile(head)                                  # Blender keys into the assigned (bake's) Action
    assert _smile_keys(head) == EXPECTED
    _write(head, mode, start_frame=5)                  # re-bake
    assert _smile_keys(head) == EXPECTED
    assert len(bake.takes(head)["main"]["keys"]) > 0
    api.remove_bake(head)
    assert _smile_keys(head) == EXPECTED               # the user's curve and its Action stay
    assert [kb.name for kb in head.data.shape_keys.key_blocks] == ["Basis", "Smile"]
    action = compat.assigned(head.data.shape_keys)[0]
    left = [fc.data_path for fcs in bake._all_fcurve_collections(action) for fc in fcs]
    assert left == [SMILE_PATH]
    # The Smile animation still plays.
    bpy.context.scene.frame_set(20)
    assert abs(head.data.shape_keys.key_blocks["Smile"].value - 0.6) < 1e-4


@needs_audio
def test_api_rebake_keeps_user_animation(wav):
    head = _head_with_smile()
    api.bake(head, str(wav), start_frame=1)
    _key_smile(head)
    api.bake(head, str(wav), start_frame=5, mode="COMPACT")   # re-bake through the API
    assert _smile_keys(head) == EXPECTED
    api.remove_bake(head)
    assert _smile_keys(head) == EXPECTED


def test_remove_deletes_the_bake_action_when_it_holds_nothing_else():
    head = _head_with_smile()
    _write(head, "COMPACT")
    name = bake.takes(head)["main"]["action"]
    api.remove_bake(head)
    assert bpy.data.actions.get(name) is None
    assert compat.assigned(head.data.shape_keys)[0] is None


def test_takes_rebake_keeps_user_keys_in_a_take_action():
    head = _head_with_smile()
    _write(head, "COMPACT", take="clip", own_action=True)
    bpy.data.actions[bake.takes(head)["clip"]["action"]].use_fake_user = True   # as bake_takes does
    take = "clip"
    _key_smile(head)
    _write(head, "COMPACT", take="clip", own_action=True)   # re-bake the take with its own new Action
    held = [a for a in bpy.data.actions
            if any(fc.data_path == SMILE_PATH for fcs in bake._all_fcurve_collections(a) for fc in fcs)]
    assert len(held) == 1 and held[0].use_fake_user   # survives saving although not assigned
    api.remove_bake(head, take)
    assert held[0].name in bpy.data.actions


@needs_audio
def test_bake_tool_rebake_into_blend_keeps_user_animation(wav, tmp_path):
    head = _head_with_smile()
    api.bake(head, str(wav), start_frame=1)
    _key_smile(head)
    first = tmp_path / "shot.blend"
    headless.save_blend(str(first))
    out = tmp_path / "shot_v2.blend"
    done = run_tool(BAKE, "--blend", first, "--object", "Head", "--audio", wav, "--out", out, "--mode", "compact")
    assert done.returncode == 0, done.stdout + done.stderr
    bpy.ops.wm.open_mainfile(filepath=str(out))
    head = bpy.data.objects["Head"]
    assert _smile_keys(head) == EXPECTED
    assert bake.takes(head)["main"]["mode"] == "COMPACT"


# --- atomic writes -------------------------------------------------------------------------------

def _temporaries(folder):
    return sorted(n for n in os.listdir(folder) if headless.TEMP_MARK in n or n.endswith("@"))


def test_save_is_atomic_and_leaves_no_temporaries(tmp_path):
    reset_scene()
    load_head("Head")
    out = tmp_path / "out.blend"
    out.write_bytes(b"previous")
    headless.save_blend(str(out))
    assert out.read_bytes()[:7] == b"BLENDER"
    assert (tmp_path / "out.blend1").read_bytes() == b"previous"   # Blender's backup, as its own save
    assert _temporaries(tmp_path) == []


def test_save_failure_leaves_previous_file_and_says_so(tmp_path, monkeypatch):
    reset_scene()
    load_head("Head")
    out = tmp_path / "out.blend"
    out.write_bytes(b"previous")

    def broken(filepath, compress):
        with open(filepath + "@", "wb") as fh:   # what Blender leaves when the disk fills up
            fh.write(b"half")
        raise RuntimeError("Error: disk full")

    monkeypatch.setattr(headless, "_write_copy", broken)
    with pytest.raises(api.SpeechToFaceError, match="Cannot write"):
        headless.save_blend(str(out))
    assert out.read_bytes() == b"previous" and _temporaries(tmp_path) == []


def test_stale_temporaries_of_a_killed_save_are_removed(tmp_path):
    dead = 2 ** 22 + 12345  # above Linux's default pid_max: never a running process
    ours = [tmp_path / f".out.blend{headless.TEMP_MARK}{dead}-0a1b.blend",
            tmp_path / f".out.blend{headless.TEMP_MARK}{dead}-0a1b.blend@"]
    alive = tmp_path / f".out.blend{headless.TEMP_MARK}{os.getpid()}-ffff.blend@"   # a save in progress
    foreign = [tmp_path / "out.blend@", tmp_path / "notes.tmp"]
    for p in ours + [alive] + foreign:
        p.write_bytes(b"x")
    reset_scene()
    load_head("Head")
    headless.save_blend(str(tmp_path / "out.blend"))
    assert not any(p.exists() for p in ours)
    assert alive.exists() and all(p.exists() for p in foreign)


@needs_audio
def test_concurrent_writers_each_leave_a_whole_file(tmp_path, wav):
    """Several bake.py processes writing one --out: every one that says 'wrote' left a whole file."""
    out = tmp_path / "same.blend"
    script = (
        "import sys; sys.path.insert(0, %r)\n"
        "from tests.addon_helpers import import_addon, load_head, reset_scene\n"
        "import_addon()\n"
        "from blender_addon import headless\n"
        "reset_scene(); load_head('Head')\n"
        "for _ in range(4):\n"
        "    headless.save_blend(%r)\n"
        "print('saved')\n" % (str(ROOT), str(out)))
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT) for _ in range(3)]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (so, se) in zip(procs, results):
        assert p.returncode == 0 and "saved" in so, so + se
    bpy.ops.wm.open_mainfile(filepath=str(out))
    assert "Head" in bpy.data.objects
    assert _temporaries(tmp_path) == []


# --- batch output collisions ---------------------------------------------------------------------

@needs_audio
@pytest.mark.parametrize("files", [("line.wav", "line.flac"), ("take 1.wav", "take_1.wav")])
def test_batch_folder_name_collision_is_an_error(tmp_path, wav, files):
    clips = tmp_path / "clips"
    clips.mkdir()
    for f in files:
        (clips / f).write_bytes(wav.read_bytes())
    out_dir = tmp_path / "baked"
    done = run_tool(BATCH, clips, "--out-dir", out_dir)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and len(errors) == 1, done.stdout + done.stderr
    assert all(f in errors[0] for f in files), errors[0]
    assert not out_dir.exists()
