"""Headless tools end to end through subprocesses (python + bpy wheel), as a user runs them."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tests.addon_helpers import import_bpy  # noqa: E402

bpy = import_bpy()

from tests.addon_helpers import HEAD, ROOT, import_addon, make_wav, reset_scene, run_tool  # noqa: E402

import_addon()
from blender_addon import bake, compat, headless  # noqa: E402

BAKE = ROOT / "tools" / "bake.py"
BATCH = ROOT / "tools" / "batch_bake.py"
PREVIEW = ROOT / "tools" / "preview.py"


def _open(path):
    bpy.ops.wm.open_mainfile(filepath=str(path))
    return bpy.context.scene


def _one_line_error(done):
    lines = [l for l in done.stderr.strip().splitlines() if l.startswith("error:")]
    assert done.returncode == 1 and len(lines) == 1, done.stdout + done.stderr
    return lines[0]


def test_script_args_under_blender_and_python():
    assert headless.script_args(["--mesh", "a"]) == ["--mesh", "a"]
    import sys
    saved = sys.argv
    try:
        sys.argv = ["blender", "-b", "-P", "tools/bake.py", "--", "--audio", "x.wav"]
        assert headless.script_args() == ["--audio", "x.wav"]
        sys.argv = ["/opt/blender/blender", "-b", "-P", "tools/bake.py"]
        assert headless.script_args() == []
        sys.argv = ["tools/bake.py", "--out", "o.blend"]
        assert headless.script_args() == ["--out", "o.blend"]
    finally:
        sys.argv = saved


def test_bake_help():
    done = run_tool(BAKE, "--help")
    assert done.returncode == 0
    for opt in ("--mesh", "--blend", "--object", "--audio", "--fps", "--mode", "--start-frame", "--out",
                "--intensity", "--encoder", "--backend"):
        assert opt in done.stdout


@pytest.mark.parametrize("tool", [BAKE, BATCH, PREVIEW], ids=lambda p: p.name)
def test_tools_without_bpy_say_how_to_run_them(tool):
    # -S hides site-packages, so this interpreter has no bpy, like a plain system Python.
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-S", str(tool), "--help"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == (f"error: {tool.name} needs Blender's Python: run it as "
                                   f"'blender -b -P tools/{tool.name} -- ARGS' or install the bpy wheel")


@pytest.mark.needs_audio
def test_bake_obj_compact_at_ntsc_rate(tmp_path):
    from core import meshio
    v, f = meshio.read_mesh(HEAD)
    obj_path = tmp_path / "head.obj"
    meshio.write_obj(obj_path, v, f)
    wav = make_wav(tmp_path / "line.wav", seconds=1.0)
    out = tmp_path / "out" / "line.blend"
    done = run_tool(BAKE, "--mesh", obj_path, "--audio", wav, "--out", out, "--fps", "29.97",
                    "--mode", "compact", "--start-frame", "12")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Baked 30 frames" in done.stdout
    # The output says when the networks are random, and only then.
    from core import weights
    bundled = weights.has_networks(weights.DEFAULT_DIR, "s2l_hama", "s2d")
    assert ("RANDOM-INITIALISED" in done.stdout) == (not bundled)
    # It names the networks it used, as the README promises for `make demo`.
    assert "networks: encoder=hama, back end=numpy, " in done.stdout
    scene = _open(out)
    assert (scene.render.fps, scene.render.fps_base) == (30, pytest.approx(1.001))
    head = bpy.data.objects["head"]
    rec = bake.takes(head)["main"]
    assert rec["mode"] == "COMPACT" and rec["start_frame"] == 12 and rec["frames"] == 30
    strips = compat.sound_strips(scene)
    assert len(strips) == 1 and strips[0].frame_final_start == 12
    assert strips[0].sound.packed_file is not None  # the .blend carries its audio
    # The mesh kept FLAME's vertex order exactly (no importer in between).
    co = np.empty(len(head.data.vertices) * 3, np.float32)
    head.data.shape_keys.reference_key.data.foreach_get("co", co)
    assert np.abs(co.reshape(-1, 3) - v).max() < 1e-6


@pytest.mark.needs_audio
def test_bake_into_existing_blend(tmp_path):
    scene = reset_scene()
    from blender_addon import api
    hero = api.load_head(str(HEAD), name="Hero")
    cube = bpy.data.objects.new("Prop", bpy.data.meshes.new("Prop"))
    scene.collection.objects.link(cube)
    scene.render.fps = 25
    src = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(src))
    wav = make_wav(tmp_path / "line.wav", seconds=0.8)
    out = tmp_path / "shot_lips.blend"
    done = run_tool(BAKE, "--blend", src, "--object", "Hero", "--audio", wav, "--out", out, "--start-frame", "101")
    assert done.returncode == 0, done.stdout + done.stderr
    scene = _open(out)
    assert scene.render.fps == 25  # the shot's rate is kept
    rec = bake.takes(bpy.data.objects["Hero"])["main"]
    assert rec["start_frame"] == 101 and rec["frames"] == 20
    assert bpy.data.objects["Prop"].data.shape_keys is None


@pytest.mark.parametrize("case", ["vertices", pytest.param("audio", marks=pytest.mark.needs_audio), "object"])
def test_bake_errors_exit_nonzero_with_one_line(tmp_path, case):
    wav = make_wav(tmp_path / "line.wav", seconds=0.5)
    out = tmp_path / "never.blend"
    if case == "vertices":
        from core import meshio
        v, f = meshio.read_mesh(HEAD)
        bad = tmp_path / "bad.ply"
        meshio.write_ply(bad, v[:100], f[:10] % 100)
        done = run_tool(BAKE, "--mesh", bad, "--audio", wav, "--out", out)
        assert "100 vertices" in _one_line_error(done)
    elif case == "audio":
        done = run_tool(BAKE, "--mesh", HEAD, "--audio", tmp_path / "missing.wav", "--out", out)
        assert "not found" in _one_line_error(done)
    else:
        reset_scene()
        bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "empty.blend"))
        done = run_tool(BAKE, "--blend", tmp_path / "empty.blend", "--object", "Nobody", "--audio", wav, "--out", out)
        assert "No object named 'Nobody'" in _one_line_error(done)
    assert not out.exists()


@pytest.mark.needs_audio
def test_batch_folder_continues_past_failures_and_skips_done(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    make_wav(clips / "a.wav", seconds=0.5)
    make_wav(clips / "b.wav", seconds=0.7, seed=1)
    (clips / "c.wav").write_bytes(b"not audio" * 40)
    out = tmp_path / "baked"
    done = run_tool(BATCH, clips, "--out-dir", out, "--mesh", HEAD)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "[3/3] c: FAILED" in done.stdout and "2 ok, 0 skipped, 1 failed" in done.stdout
    assert (out / "a.blend").is_file() and (out / "b.blend").is_file() and not (out / "c.blend").exists()
    summary = json.loads((out / "batch_summary.json").read_text())
    assert (summary["ok"], summary["failed"]) == (2, 1)
    (clips / "c.wav").unlink()
    again = run_tool(BATCH, clips, "--out-dir", out)
    assert again.returncode == 0 and "0 ok, 2 skipped, 0 failed" in again.stdout
    _open(out / "b.blend")
    assert bake.takes(bpy.data.objects["sample_neutral"])["main"]["frames"] == 21


@pytest.mark.needs_audio
def test_batch_manifests_csv_and_json(tmp_path):
    make_wav(tmp_path / "one.wav", seconds=0.5)
    make_wav(tmp_path / "two.wav", seconds=0.5, seed=2)
    with open(tmp_path / "shots.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["audio", "name", "fps", "start_frame", "mode"])
        w.writerow(["one.wav", "shot_010", "24", "5", "compact"])
        w.writerow(["two.wav", "shot_020", "60", "1", "per-frame"])
    done = run_tool(BATCH, tmp_path / "shots.csv", "--out-dir", tmp_path / "out_csv")
    assert done.returncode == 0, done.stdout + done.stderr
    scene = _open(tmp_path / "out_csv" / "shot_010.blend")
    rec = bake.takes(bpy.data.objects["sample_neutral"])["main"]
    assert (scene.render.fps, rec["start_frame"], rec["mode"], rec["frames"]) == (24, 5, "COMPACT", 12)
    (tmp_path / "shots.json").write_text(json.dumps({"items": [{"audio": "two.wav", "out": "json_out/x.blend"}]}))
    done = run_tool(BATCH, tmp_path / "shots.json")
    assert done.returncode == 0 and (tmp_path / "json_out" / "x.blend").is_file(), done.stdout + done.stderr


def _two_lines(tmp_path):
    """A folder of two short spoken lines for the batch tool."""
    clips = tmp_path / "lines"
    clips.mkdir()
    for i in range(2):
        make_wav(clips / f"line{i}.wav", seconds=0.4, seed=i)
    return clips


@pytest.mark.needs_audio
def test_batch_takes_one_action_per_clip(tmp_path):
    clips = _two_lines(tmp_path)
    out = tmp_path / "all.blend"
    done = run_tool(BATCH, clips, "--takes", out, "--mode", "compact")
    assert done.returncode == 0, done.stdout + done.stderr
    _open(out)
    head = bpy.data.objects["sample_neutral"]
    recs = bake.takes(head)
    assert set(recs) == {"line0", "line1"}
    assert {recs[t]["action"] for t in recs} <= {a.name for a in bpy.data.actions}
    again = run_tool(BATCH, clips, "--takes", out)
    assert again.returncode == 0 and "0 ok, 2 skipped" in again.stdout


def _remeshed_head(tmp_path):
    """A FLAME head decimated by Blender (2k vertices, other topology) as an OBJ."""
    from core import meshio
    made = run_tool(ROOT / "tools" / "make_test_heads.py", "--only", "decimated_2k", "--out", tmp_path / "heads")
    assert made.returncode == 0, made.stderr
    with np.load(tmp_path / "heads" / "decimated_2k.npz") as d:
        meshio.write_obj(tmp_path / "remeshed.obj", d["vertices"], d["loops"].reshape(-1, 3))   # all triangles
    return tmp_path / "remeshed.obj"


def _character_blend(path):
    """A .blend with 'Face' (a FLAME head with three ARKit-named keys) and 'Rock' (no ARKit keys)."""
    from blender_addon import api
    reset_scene()
    face = api.load_head(str(HEAD), name="Face")
    face.shape_key_add(name="Basis", from_mix=False)
    for name in ("jawOpen", "mouthClose", "eyeBlinkLeft"):
        face.shape_key_add(name=name, from_mix=False)
    mesh = bpy.data.meshes.new("Rock")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    rock = bpy.data.objects.new("Rock", mesh)
    bpy.context.scene.collection.objects.link(rock)
    rock.shape_key_add(name="Basis")
    rock.shape_key_add(name="freckles")
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


@pytest.mark.needs_audio
def test_batch_targets_flame_arkit_and_any(tmp_path):
    """One manifest: a FLAME head, an ARKit character (with its CSV), a FLAME head given the 52
    shapes (--arkit-files), a head of another topology; items whose head cannot take their target,
    and a bad target, fail with the reason while the batch goes on and the inputs stay untouched."""
    make_wav(tmp_path / "a.wav", seconds=0.5)
    make_wav(tmp_path / "b.wav", seconds=0.5, seed=1)
    _remeshed_head(tmp_path)
    character = _character_blend(tmp_path / "character.blend")
    before = character.read_bytes()
    items = [
        {"audio": "a.wav", "name": "flame_item"},
        {"audio": "a.wav", "name": "arkit_char", "target": "arkit", "blend": "character.blend", "object": "Face",
         "arkit_csv": "char.csv"},
        {"audio": "b.wav", "name": "arkit_head", "target": "ARKit"},
        {"audio": "b.wav", "name": "any_item", "target": "any", "mesh": "remeshed.obj"},
        {"audio": "a.wav", "name": "bad_target", "target": "metahuman"},
        {"audio": "a.wav", "name": "arkit_rock", "target": "arkit", "blend": "character.blend", "object": "Rock"},
        {"audio": "a.wav", "name": "arkit_remeshed", "target": "arkit", "mesh": "remeshed.obj"},
        {"audio": "a.wav", "name": "flame_remeshed", "mesh": "remeshed.obj"},
        {"audio": "a.wav", "name": "csv_on_flame", "arkit_csv": "x.csv"},
    ]
    (tmp_path / "shots.json").write_text(json.dumps(items))
    out = tmp_path / "out"
    done = run_tool(BATCH, tmp_path / "shots.json", "--out-dir", out, "--arkit-files")
    assert done.returncode == 1, done.stdout + done.stderr
    log = done.stdout
    assert "5 failed" in log and "4 ok" in log, log
    assert "bad_target: FAILED: 'target' must be flame, arkit or any, got \"metahuman\"" in log
    assert "arkit_rock: FAILED: 'Rock' has 1 shape keys but none has an ARKit name" in log
    assert "arkit_remeshed: FAILED: 'remeshed' has 2029 vertices" in log and "own ARKit-named shape keys" in log
    assert "flame_remeshed: FAILED: 'remeshed' has 2029 vertices" in log and "takes target 'any'" in log
    assert "csv_on_flame: FAILED: 'arkit_csv' goes with target arkit" in log
    assert "arkit_char: ok, arkit: 12 frames on 'Face', keyed 3 of 52 ARKit shapes" in log   # the .blend's 24 fps
    summary = json.loads((out / "batch_summary.json").read_text())
    status = {r["name"]: r["status"] for r in summary["items"]}
    assert [n for n, st in status.items() if st == "ok"] == ["flame_item", "arkit_char", "arkit_head", "any_item"]
    assert {r["name"]: r.get("target") for r in summary["items"] if r["status"] == "ok"} == {
        "flame_item": "flame", "arkit_char": "arkit", "arkit_head": "arkit", "any_item": "any"}
    # Only what the ok items write; the character's .blend is read, never written.
    assert sorted(p.name for p in out.iterdir()) == sorted([
        "flame_item.blend", "arkit_char.blend", "arkit_char.json", "arkit_head.blend", "arkit_head.csv",
        "arkit_head.json", "any_item.blend", "batch_summary.json"])
    assert character.read_bytes() == before and not (tmp_path / "x.csv").exists()
    with open(tmp_path / "char.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:2] == ["Timecode", "BlendShapeCount"] and len(rows) == 1 + 12
    _open(out / "arkit_char.blend")
    key = bpy.data.objects["Face"].data.shape_keys
    assert compat.assigned(key)[0].name == "S2F_ARKit_Face"
    _open(out / "any_item.blend")
    head = bpy.data.objects["remeshed"]
    assert len(head.data.vertices) == 2029 and "s2f_flame_triangle" in head.data.attributes
    assert bake.takes(head)["main"]["frames"] == 15
    # Rerun: finished items (all their files) are skipped, the failing ones fail again.
    again = run_tool(BATCH, tmp_path / "shots.json", "--out-dir", out, "--arkit-files")
    assert again.returncode == 1 and "0 ok, 4 skipped, 5 failed" in again.stdout, again.stdout


@pytest.mark.needs_audio
def test_batch_takes_on_a_head_of_any_topology(tmp_path):
    """--takes --target any: the head is fitted once, every clip is its own take and Action."""
    clips = _two_lines(tmp_path)
    mesh = _remeshed_head(tmp_path)
    out = tmp_path / "all.blend"
    done = run_tool(BATCH, clips, "--takes", out, "--target", "any", "--mesh", mesh, "--mode", "compact")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("FLAME template fitted") == 1 and "2 ok" in done.stdout
    _open(out)
    recs = bake.takes(bpy.data.objects["remeshed"])
    assert set(recs) == {"line0", "line1"} and len({r["action"] for r in recs.values()}) == 2
    refused = run_tool(BATCH, clips, "--takes", tmp_path / "arkit.blend", "--target", "arkit")
    assert "--takes bakes takes on one head" in _one_line_error(refused)


@pytest.mark.needs_audio
def test_preview_renders_mp4_with_sound_and_contact_sheet(tmp_path):
    wav = make_wav(tmp_path / "line.wav", seconds=0.6)
    blend = tmp_path / "line.blend"
    done = run_tool(BAKE, "--mesh", HEAD, "--audio", wav, "--out", blend, "--fps", "24", "--intensity", "0.05")
    assert done.returncode == 0, done.stderr
    done = run_tool(PREVIEW, blend, "--out-dir", tmp_path / "prev", "--profile", "--height", "96",
                    "--frames", "1:6", "--sheet", "4", "--closeups")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    log = done.stdout + done.stderr
    assert "EGL" not in log and "Video append" not in log and "Saved:" not in log  # quiet: no per-frame lines
    mp4 = (tmp_path / "prev" / "line.mp4").read_bytes()
    assert mp4[4:8] == b"ftyp" and b"avc1" in mp4 and b"mp4a" in mp4  # H.264 video + AAC sound
    sheet = tmp_path / "prev" / "line_sheet.png"
    img = bpy.data.images.load(str(sheet))
    assert img.size[0] > img.size[1] > 96
    px = np.array(img.pixels[:]).reshape(-1, 4)[:, :3]
    assert len(np.unique(px.round(2), axis=0)) > 50  # a rendered head, not an empty background
    # Close-ups of the same frames: the mouth with its side view (twice as wide), the eyes alone.
    mouth = bpy.data.images.load(str(tmp_path / "prev" / "line_mouth.png"))
    eyes = bpy.data.images.load(str(tmp_path / "prev" / "line_eyes.png"))
    assert mouth.size[0] > eyes.size[0] and mouth.size[1] == eyes.size[1] > 96
    for img in (mouth, eyes):
        px = np.array(img.pixels[:]).reshape(-1, 4)[:, :3]
        assert len(np.unique(px.round(2), axis=0)) > 50


@pytest.mark.needs_audio
def test_bake_benchmark_tool_on_tiny_settings(tmp_path):
    """tools/benchmark_bake.py (docs/benchmarks/bake.json, the README's bake figures) on a 1 s clip."""
    out = tmp_path / "bake.json"
    done = run_tool(ROOT / "tools" / "benchmark_bake.py", "--seconds", "1", "--fps", "24", "--repeats", "1",
                    "--out", out)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["weights_trained"] is True and (report["clip_seconds"], report["fps"]) == (1.0, 24.0)
    per_frame, compact = report["per_frame"], report["compact"]
    from core import upper_face
    upper = len(upper_face.KEY_NAMES)    # the upper-face layer's own keys come with every bake
    assert per_frame["frames"] == compact["frames"] == 24 and per_frame["shape_keys"] == 24 + upper
    assert 1 + upper <= compact["shape_keys"] < 24 + upper and compact["max_error_m"] <= compact["error_bound_m"]
    # The per-frame .blend holds 24 more full-mesh keys than the head alone; compact fewer.
    assert per_frame["blend_mb"] > compact["blend_mb"] >= report["head_only_blend_mb"] > 0
    for mode in (per_frame, compact):
        assert 0 < mode["inference_s"] <= mode["total_s"]
    assert report["cold_first_run"]["total_s"] > 0


@pytest.mark.needs_audio
def test_bake_targets_arkit_and_expression_options(tmp_path):
    """--target arkit keys the 52 ARKit shapes (a FLAME head given them) and writes Live Link
    Face CSV; --target flame takes the expression options; bad ones are one error line."""
    wav = make_wav(tmp_path / "line.wav", seconds=1.0)
    out, csv_path = tmp_path / "arkit.blend", tmp_path / "arkit.csv"
    done = run_tool(BAKE, "--target", "arkit", "--mesh", HEAD, "--audio", wav, "--out", out,
                    "--arkit-csv", csv_path, "--fps", "24")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "keyed 52 of 52 ARKit shapes" in done.stdout
    with open(csv_path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:3] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft"] and len(rows) == 1 + 24
    scene = _open(out)
    assert len(compat.sound_strips(scene)) == 1
    out2 = tmp_path / "flame.blend"
    done = run_tool(BAKE, "--mesh", HEAD, "--audio", wav, "--out", out2, "--jaw", "1.5", "--lips", "0.5",
                    "--upper-face", "0", "--seed", "4")
    assert done.returncode == 0, done.stdout + done.stderr
    _open(out2)
    rec = bake.takes(bpy.data.objects[HEAD.stem])["main"]
    assert (rec["jaw"], rec["lips"], rec["upper_face"], rec["seed"]) == (1.5, 0.5, 0.0, 4)
    for bad, fragment in ((["--emotion", "furious"], "Unknown emotion"), (["--style", "2"], "between -1 and 1"),
                          (["--arkit-csv", str(csv_path)], "go with --target arkit")):
        done = run_tool(BAKE, "--mesh", HEAD, "--audio", wav, "--out", tmp_path / "bad.blend", *bad)
        lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert done.returncode != 0 and len(lines) == 1 and fragment in lines[0], done.stderr
        assert not (tmp_path / "bad.blend").exists()


def test_rasteriser_keeps_the_nearest_face_and_skips_faces_turned_away():
    from tools.rasterise import BACKGROUND, Rasteriser
    # Two overlapping squares facing the camera (the second nearer), and one turned away.
    v = np.array([[2, 2, 0], [18, 2, 0], [18, 18, 0], [2, 18, 0],
                  [6, 6, 1], [14, 6, 1], [14, 14, 1], [6, 14, 1]], float)
    faces = np.array([[0, 2, 1], [0, 3, 2], [4, 6, 5], [4, 7, 6]])   # counter-clockwise on screen
    r = Rasteriser(faces, 20, 20)
    n = np.array([[0.0, 0.0, 1.0]] * 4 + [[0.6, 0.0, 0.8]] * 4, np.float32)  # the small one tilted
    img = np.empty((20, 20, 3))
    img[:] = BACKGROUND
    r.draw(img, v, n)
    big, small = img[4, 4].copy(), img[10, 10].copy()
    assert not np.allclose(big, BACKGROUND) and not np.allclose(small, big)  # the near square wins
    depth_far = v.copy()
    depth_far[4:, 2] = -1.0  # now the small square is behind the big one
    img[:] = BACKGROUND
    r.draw(img, depth_far, n)
    assert np.allclose(img[10, 10], big)
    away = Rasteriser(faces[:, ::-1], 20, 20)  # clockwise: facing away
    img[:] = BACKGROUND
    away.draw(img, v, n)
    assert np.allclose(img, BACKGROUND)
    away.draw(img, v, n, inside_box=(0, 0, 19, 19))
    assert not np.allclose(img[10, 10], BACKGROUND)
