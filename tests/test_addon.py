"""The Blender layer on the bpy 5.0.1 wheel: bake accuracy, sync with the sound strip, keeping the
user's keys, clean re-bakes, and every error path leaving the scene untouched."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.addon_helpers import import_bpy  # noqa: E402

bpy = import_bpy()

from tests.addon_helpers import (HEAD, NO_WEIGHTS, evaluated_vertices, import_addon, load_head,  # noqa: E402
                                 make_wav, reset_scene, snapshot, speechlike, write_wav)

addon = import_addon()
from blender_addon import api, bake, compat, engine, job, status  # noqa: E402
from core.errors import AudioError, Cancelled, SpeechToFaceError, TopologyError, WeightsError  # noqa: E402
from core.pipeline import Animator  # noqa: E402


@pytest.fixture(scope="module")
def animator():
    """What the add-on uses with default settings (bundled weights, random if none)."""
    return Animator.load(None, "hama", allow_random=True)


@pytest.fixture
def scene():
    return reset_scene()


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    return make_wav(tmp_path_factory.mktemp("audio") / "speech.wav", seconds=1.5, rate=24000)


def _strip(scene, path, frame, channel=1):
    s = compat.new_sound_strip(scene, "speech", str(path), channel, frame)
    scene.sequence_editor.active_strip = s
    return s


def _first_keyed_frame(obj, record):
    key = obj.data.shape_keys
    action, slot = compat.assigned(key)
    fcs = compat.fcurves(action, slot, ensure=False)
    name = record["keys"][0]
    fc = next(f for f in fcs if f.data_path == f'key_blocks["{name}"].value')
    pts = np.array([tuple(p.co) for p in fc.keyframe_points])
    return int(pts[pts[:, 1] > 0.5][0, 0]) if record["mode"] == "PER_FRAME" else int(pts[1, 0])


# --- registration --------------------------------------------------------------------------------

def test_register_unregister_roundtrip():
    assert hasattr(bpy.types, "SPEECHTOFACE_PT_main") and hasattr(bpy.types.Scene, "speech_to_face")
    panel = bpy.types.SPEECHTOFACE_PT_main
    assert (panel.bl_space_type, panel.bl_region_type, panel.bl_category) == ("VIEW_3D", "UI", "Speech to Face")
    addon.unregister()
    assert not hasattr(bpy.types, "SPEECHTOFACE_PT_main") and not hasattr(bpy.types.Scene, "speech_to_face")
    addon.register()
    assert bpy.ops.speech_to_face.bake.idname() == "SPEECH_TO_FACE_OT_bake"


# --- accuracy ---------------------------------------------------------------------------------

@pytest.mark.needs_audio
def test_operator_per_frame_equals_core_prediction(scene, wav, animator):
    scene.render.fps = 24
    head = load_head()
    _strip(scene, wav, 100)
    assert status.plan(bpy.context).blocker == ""
    assert bpy.ops.speech_to_face.bake() == {"FINISHED"}
    assert "Baked 36 frames" in scene.speech_to_face.last_report
    record = bake.takes(head)["main"]
    expected = animator.animate(str(wav), bake.neutral_vertices(head), fps=24.0)
    assert record["frames"] == expected.num_frames == math.ceil(1.5 * 24)
    assert record["start_frame"] == 100 and _first_keyed_frame(head, record) == 100
    for i in (0, 1, 17, expected.num_frames - 1):
        got = evaluated_vertices(head, 100 + i)
        assert np.abs(got - expected.vertices[i]).max() < 1e-5, i
    neutral = bake.neutral_vertices(head)
    for f in (99, 100 + expected.num_frames):  # before and after the clip: the rest pose
        assert np.abs(evaluated_vertices(head, f) - neutral).max() < 1e-6
    assert scene.frame_end >= 100 + expected.num_frames - 1
    # CONSTANT interpolation: a sub-frame shows its own frame, never a blend.
    scene.frame_set(105, subframe=0.5)
    mesh = head.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    assert np.abs(co.reshape(-1, 3) - expected.vertices[5]).max() < 1e-5


@pytest.mark.needs_audio
def test_compact_within_stated_bound(scene, wav, animator):
    scene.render.fps = 30
    head = load_head()
    _strip(scene, wav, 1)
    result = api.bake(head, mode="COMPACT")
    record = bake.takes(head)["main"]
    expected = animator.animate(str(wav), bake.neutral_vertices(head), fps=30.0)
    assert result.mode == "COMPACT" and result.frames == expected.num_frames == 45
    assert result.shape_keys == len(record["keys"]) < expected.num_frames
    bound = record["error_bound"]
    assert bound == pytest.approx(1e-4 * np.linalg.norm(np.ptp(bake.neutral_vertices(head), 0)) / 0.32)
    worst = max(np.abs(evaluated_vertices(head, 1 + i) - expected.vertices[i]).max() for i in range(45))
    assert worst <= bound + 1e-6
    assert record["max_error"] <= bound


# --- sync with the sound strip ----------------------------------------------------------------------

@pytest.mark.parametrize("fps,fps_base", [(24, 1.0), (30, 1.001), (60, 1.0)])
@pytest.mark.parametrize("frame", [1, 100])
@pytest.mark.needs_audio
def test_animation_starts_with_strip(scene, wav, animator, frame, fps, fps_base):
    scene.render.fps, scene.render.fps_base = fps, fps_base
    rate = fps / fps_base
    head = load_head()
    strip = _strip(scene, wav, frame)
    result = api.bake(head)
    record = bake.takes(head)["main"]
    assert strip.frame_final_start == frame == result.start_frame == _first_keyed_frame(head, record)
    assert result.frames == math.ceil(1.5 * rate - 1e-9)
    assert scene.frame_start <= frame and scene.frame_end >= frame + result.frames - 1
    expected = animator.animate(str(wav), bake.neutral_vertices(head), fps=rate)
    assert np.abs(evaluated_vertices(head, frame) - expected.vertices[0]).max() < 1e-5
    last = result.frames - 1
    assert np.abs(evaluated_vertices(head, frame + last) - expected.vertices[last]).max() < 1e-5


@pytest.mark.needs_audio
def test_trimmed_strip_uses_the_played_audio(scene, tmp_path, animator):
    scene.render.fps = 24
    x = speechlike(2.0, 24000, seed=3)
    path = write_wav(tmp_path / "long.wav", x, 24000)
    head = load_head()
    strip = _strip(scene, path, 10)
    strip.frame_offset_start = 6     # trims 0.25 s = 6000 samples
    strip.frame_offset_end = 12      # and 0.5 s at the end
    assert strip.frame_final_start == 16
    result = api.bake(head)
    assert result.start_frame == 16 and result.frames == strip.frame_final_duration == 30
    pcm = np.round(x * 32767) / 32768  # what the 16-bit file holds
    expected = animator.animate((pcm[6000:6000 + 30000], 24000), bake.neutral_vertices(head), fps=24.0)
    for i in (0, 12, 29):
        assert np.abs(evaluated_vertices(head, 16 + i) - expected.vertices[i]).max() < 1e-5


# --- the user's data --------------------------------------------------------------------------------

def _user_keys(head, scene):
    head.shape_key_add(name="Basis", from_mix=False)
    smile = head.shape_key_add(name="Smile", from_mix=False)
    co = np.empty(len(head.data.vertices) * 3, np.float32)
    smile.data.foreach_get("co", co)
    co = co.reshape(-1, 3)
    co[:, 1] += 0.002
    smile.data.foreach_set("co", co.ravel())
    smile.value = 0.3
    smile.keyframe_insert("value", frame=1)
    smile.value = 0.6
    smile.keyframe_insert("value", frame=40)
    return smile


@pytest.mark.needs_audio
def test_existing_keys_and_animation_survive(scene, wav, animator):
    scene.render.fps = 24
    head = load_head()
    _user_keys(head, scene)
    scene.frame_set(1)
    before = snapshot(head)
    user_action = head.data.shape_keys.animation_data.action.name
    _strip(scene, wav, 5)
    api.bake(head)
    key = head.data.shape_keys
    assert key.reference_key.name == "Basis" and "Smile" in key.key_blocks
    after = {b[0]: b for b in snapshot(head)["keys"]}
    for block in before["keys"]:
        assert after[block[0]][1] == block[1], f"{block[0]} geometry changed"
    assert key.animation_data.action.name == user_action  # our F-curves join the user's Action
    paths = {fc.data_path for fc in compat.fcurves(*compat.assigned(key), ensure=False)}
    assert 'key_blocks["Smile"].value' in paths
    # Both play: frame 10 shows the prediction plus the user's smile at its keyed value.
    expected = animator.animate(str(wav), bake.neutral_vertices(head), fps=24.0)
    got = evaluated_vertices(head, 10)
    smile_value = key.key_blocks["Smile"].value
    assert 0.3 < smile_value < 0.6
    want = expected.vertices[5] + np.array([0, 0.002 * smile_value, 0], np.float32)
    assert np.abs(got - want).max() < 1e-5
    # Removing the bake restores exactly what the user had.
    api.remove_bake(head)
    scene.frame_set(1)
    assert snapshot(head)["keys"] == before["keys"]
    assert snapshot(head)["fcurves"] == before["fcurves"]


@pytest.mark.needs_audio
def test_rebake_leaves_no_stale_keys(scene, tmp_path):
    scene.render.fps = 24
    head = load_head()
    long_wav = make_wav(tmp_path / "a.wav", seconds=1.5)
    short_wav = make_wav(tmp_path / "b.wav", seconds=0.5, seed=1)
    first = api.bake(head, str(long_wav), start_frame=1)
    assert first.frames == 36
    second = api.bake(head, str(short_wav), start_frame=1)
    key = head.data.shape_keys
    ours = [kb.name for kb in key.key_blocks if kb.name.startswith(bake.KEY_PREFIX)]
    upper = [n for n in ours if "_upper_" in n]          # the upper-face layer's own keys
    assert len(upper) == len(bake.takes(head)["main"]["upper_face_keys"]) > 0
    assert len(ours) - len(upper) == second.frames == 12 and len(key.key_blocks) == 13 + len(upper)
    third = api.bake(head, str(short_wav), start_frame=1, mode="COMPACT")
    ours = [kb.name for kb in key.key_blocks if kb.name.startswith(bake.KEY_PREFIX)]
    assert len(ours) == third.shape_keys and all("_pc" in n or "_upper_" in n for n in ours)
    action, slot = compat.assigned(key)
    names = {kb.name for kb in key.key_blocks}
    for fc in compat.fcurves(action, slot, ensure=False):
        assert fc.data_path.split('"')[1] in names, f"F-curve for a removed key: {fc.data_path}"
    assert [a.name for a in bpy.data.actions if a.name.startswith(bake.KEY_PREFIX)] == [action.name]
    # The file source adds one strip per bake and replaces its own previous one.
    assert [s.name for s in compat.sound_strips(scene)] == [third.strip_name]
    api.remove_bake(head)
    assert head.data.shape_keys is None and not bpy.data.actions


@pytest.mark.needs_audio
def test_takes_one_action_per_clip(scene, tmp_path):
    head = load_head()
    clips = [make_wav(tmp_path / f"line{i}.wav", seconds=0.4 + 0.2 * i, seed=i) for i in range(2)]
    results = api.bake_takes(head, [str(c) for c in clips])
    assert [type(r).__name__ for _, r in results] == ["BakeResult", "BakeResult"]
    recs = bake.takes(head)
    assert set(recs) == {"line0", "line1"}
    actions = {recs[t]["action"] for t in recs}
    assert len(actions) == 2 and all(bpy.data.actions[a].use_fake_user for a in actions)
    assert compat.assigned(head.data.shape_keys)[0].name == recs["line1"]["action"]


# --- errors: a clear message and nothing changed -------------------------------------------------------

def _expect_unchanged(obj, fn, exc_type, match):
    before = snapshot(obj)
    with pytest.raises(exc_type, match=match):
        fn()
    assert snapshot(obj) == before


def test_error_not_a_mesh(scene, wav):
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    _expect_unchanged(cam, lambda: api.bake(cam, str(wav)), SpeechToFaceError, "not a mesh")


def test_error_wrong_vertex_count(scene, wav):
    head = load_head()
    import bmesh
    bm = bmesh.new()
    bm.from_mesh(head.data)
    bm.verts.ensure_lookup_table()
    bmesh.ops.delete(bm, geom=[bm.verts[0]], context="VERTS")
    bm.to_mesh(head.data)
    bm.free()
    _expect_unchanged(head, lambda: api.bake(head, str(wav)), TopologyError, "5022 vertices.*exactly 5023")


def test_error_reordered_faces(scene, wav):
    from core import meshio
    v, f = meshio.read_mesh(HEAD)
    mesh = bpy.data.meshes.new("Shuffled")
    f = f.copy()
    f[[0, 1]] = f[[1, 0]]
    mesh.from_pydata(v.tolist(), [], f.tolist())
    obj = bpy.data.objects.new("Shuffled", mesh)
    scene.collection.objects.link(obj)
    _expect_unchanged(obj, lambda: api.bake(obj, str(wav)), TopologyError, "triangle 0")


@pytest.mark.needs_audio
def test_error_edit_mode(scene, wav):
    head = load_head()
    bpy.context.view_layer.objects.active = head
    head.select_set(True)
    assert bpy.ops.object.mode_set(mode="EDIT") == {"FINISHED"} and head.mode == "EDIT"
    _expect_unchanged(head, lambda: api.bake(head, str(wav)), SpeechToFaceError, "is in Edit Mode")
    # The button is disabled and says why.
    _strip(scene, wav, 1)
    assert "is in Edit Mode" in status.plan(bpy.context).blocker
    assert not bpy.ops.speech_to_face.bake.poll()
    assert head.mode == "EDIT"  # the user's mode is left alone
    bpy.ops.object.mode_set(mode="OBJECT")


def test_error_non_triangle_faces(scene, wav):
    """FLAME's vertices with two triangles merged into a quad: refused, named, nothing changed."""
    from core import meshio
    v, f = meshio.read_mesh(HEAD)
    faces = f.tolist()
    # Two triangles sharing an edge become one quad (same 5023 vertices).
    a, b = faces[0], next(t for t in faces[1:] if len(set(t) & set(faces[0])) == 2)
    shared, (only_a,), (only_b,) = set(a) & set(b), set(a) - set(b), set(b) - set(a)
    p, q = sorted(shared)
    quad = [only_a, p, only_b, q]
    faces = [quad] + [t for t in faces[1:] if t != b]
    mesh = bpy.data.meshes.new("Quads")
    mesh.from_pydata(v.tolist(), [], faces)
    obj = bpy.data.objects.new("Quads", mesh)
    scene.collection.objects.link(obj)
    assert len(mesh.vertices) == 5023 and sorted(len(p.vertices) for p in mesh.polygons)[-1] == 4
    _expect_unchanged(obj, lambda: api.bake(obj, str(wav)), TopologyError, "1 faces that are not triangles")


def test_error_linked_library_data(scene, wav, tmp_path):
    head = load_head("LibHead")
    lib = tmp_path / "lib.blend"
    bpy.data.libraries.write(str(lib), {head})
    reset_scene()
    with bpy.data.libraries.load(str(lib), link=True) as (src, dst):
        dst.objects = ["LibHead"]
    linked = dst.objects[0]
    bpy.context.scene.collection.objects.link(linked)
    _expect_unchanged(linked, lambda: api.bake(linked, str(wav)), SpeechToFaceError, "linked")


def test_error_no_audio(scene):
    head = load_head()
    _expect_unchanged(head, lambda: api.bake(head), AudioError, "No sound strip")
    bpy.context.view_layer.objects.active = head
    assert "No sound strip" in status.plan(bpy.context).blocker
    assert not bpy.ops.speech_to_face.bake.poll()


@pytest.mark.parametrize("content,match", [(b"", "empty"), (b"RIFF\x00\x00WAVEnot really" * 20, "Cannot read"),
                                           (None, "not found")])
@pytest.mark.needs_audio
def test_error_unreadable_audio(scene, tmp_path, content, match):
    head = load_head()
    path = tmp_path / "bad.wav"
    if content is not None:
        path.write_bytes(content)
    _expect_unchanged(head, lambda: api.bake(head, str(path)), AudioError, match)


@pytest.mark.needs_audio
def test_error_audio_without_samples(scene, tmp_path):
    head = load_head()
    path = write_wav(tmp_path / "nothing.wav", np.zeros(0), 16000)
    _expect_unchanged(head, lambda: api.bake(head, str(path)), AudioError, "empty")


@pytest.mark.needs_audio
def test_silent_audio_warns_and_rests(scene, tmp_path):
    head = load_head()
    path = make_wav(tmp_path / "silence.wav", seconds=0.5, silent=True)
    result = api.bake(head, str(path), start_frame=1)
    assert any("silent" in w for w in result.warnings)
    assert result.frames == 12


def test_error_missing_weights_folder(scene, wav):
    head = load_head()
    _expect_unchanged(head, lambda: api.bake(head, str(wav), weights_dir="/nonexistent/weights"),
                      WeightsError, "not found")


@pytest.fixture
def weights_dir(tmp_path):
    """A real weights folder (random-initialised networks written in the shipped format)."""
    from core import weights
    from core.numpy_runtime import random_state, s2d_parameter_shapes, s2l_parameter_shapes
    from core.pipeline import ENCODER_CONFIGS
    cfg = dict(ENCODER_CONFIGS["hama"])
    weights.save_network(tmp_path, "s2l_hama", "s2l", cfg, random_state(s2l_parameter_shapes(cfg), 5),
                         front_end="hama", trained=False, training_data="random (test)")
    weights.save_network(tmp_path, "s2d", "s2d", {}, random_state(s2d_parameter_shapes({}), 6),
                         front_end="", trained=False, training_data="random (test)")
    engine.clear_cache()
    yield tmp_path
    engine.clear_cache()


@pytest.mark.needs_audio
def test_weights_folder_bakes(scene, wav, weights_dir):
    head = load_head()
    result = api.bake(head, str(wav), weights_dir=str(weights_dir), allow_random=False)
    assert result.frames == 36 and not result.trained


@pytest.mark.needs_audio
def test_error_corrupt_weights(scene, wav, weights_dir):
    head = load_head()
    blob = bytearray((weights_dir / "s2d.npz").read_bytes())
    blob[100] ^= 0xFF
    (weights_dir / "s2d.npz").write_bytes(bytes(blob))
    _expect_unchanged(head, lambda: api.bake(head, str(wav), weights_dir=str(weights_dir)), WeightsError, "corrupt")


@pytest.mark.needs_audio
def test_error_missing_weights_file(scene, wav, weights_dir):
    head = load_head()
    (weights_dir / "s2l_hama.npz").unlink()
    _expect_unchanged(head, lambda: api.bake(head, str(wav), weights_dir=str(weights_dir)), WeightsError, "missing")


def test_error_no_weights_when_random_not_allowed(scene, wav):
    head = load_head()
    _expect_unchanged(head, lambda: api.bake(head, str(wav), weights_dir=str(HEAD.parent), allow_random=False),
                      WeightsError, "No trained weights")


@pytest.mark.needs_audio
def test_operator_reports_error_and_changes_nothing(scene, tmp_path):
    head = load_head()
    bpy.context.view_layer.objects.active = head
    props = scene.speech_to_face
    props.audio_source = "FILE"
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"garbage" * 50)
    props.audio_file = str(bad)
    before = snapshot(head)
    with pytest.raises(RuntimeError, match="Cannot read audio"):
        bpy.ops.speech_to_face.bake()
    assert snapshot(head) == before


# --- the worker thread and cancel ----------------------------------------------------------------------

@pytest.mark.needs_audio
def test_worker_thread_matches_direct_inference(scene, tmp_path):
    scene.render.fps = 30
    head = load_head()
    path = make_wav(tmp_path / "long.wav", seconds=4.0)
    settings = job.BakeSettings()
    request = job.prepare(scene, head, settings, audio_path=str(path), start_frame=1)
    threaded = job.BakeJob(request).start()
    assert threaded.wait(300) and threaded.error is None and threaded.progress == 1.0
    direct = job.infer(request)
    assert np.array_equal(threaded.outcome.displacements, direct.displacements)



def _invoke_modal(monkeypatch, context):
    """The bake operator's own invoke, on a real operator instance, with a window in the context.

    bpy's background mode has no event loop, so ``bpy.ops`` always runs ``execute``; for that one
    call, ``execute`` enters ``invoke`` as the button would. The events are then handed to the
    operator's ``modal`` directly, as the window manager would.
    """
    from blender_addon import operators
    captured = []

    def enter_invoke(self, ctx):
        win = ctx.window_manager.windows[0]
        with ctx.temp_override(window=win, screen=win.screen):
            result = self.invoke(bpy.context, None)
        captured.append(self)
        return result

    monkeypatch.setattr(operators.SPEECHTOFACE_OT_bake, "execute", enter_invoke)
    assert bpy.ops.speech_to_face.bake() == {"RUNNING_MODAL"}
    monkeypatch.undo()
    return captured[0]


def _event(op, kind, value="NOTHING"):
    from types import SimpleNamespace
    win = bpy.context.window_manager.windows[0]
    with bpy.context.temp_override(window=win, screen=win.screen):
        return op.modal(bpy.context, SimpleNamespace(type=kind, value=value))


def _file_source(scene, path):
    props = scene.speech_to_face
    props.audio_source, props.audio_file, props.audio_frame = "FILE", str(path), 1


@pytest.mark.needs_audio
def test_operator_esc_cancels_and_changes_nothing(scene, tmp_path, monkeypatch):
    import time
    scene.render.fps = 30
    head = load_head()
    bpy.context.view_layer.objects.active = head
    _file_source(scene, make_wav(tmp_path / "long.wav", seconds=20.0))  # long: Esc lands mid-run
    before = snapshot(head)
    op = _invoke_modal(monkeypatch, bpy.context)
    running = op._job
    assert status.RUNNING[scene.name] is running
    deadline = time.monotonic() + 120
    while running.progress == 0 and not running.done and time.monotonic() < deadline:
        time.sleep(0.01)  # Esc once the work is under way
    assert _event(op, "MOUSEMOVE") == {"PASS_THROUGH"} and _event(op, "A", "PRESS") == {"RUNNING_MODAL"}
    assert _event(op, "ESC", "PRESS") == {"CANCELLED"}
    assert running.wait(120) and isinstance(running.error, Cancelled) and running.outcome is None
    assert 0 < running.progress < 1
    assert scene.name not in status.RUNNING and op._timer is None
    assert snapshot(head) == before


@pytest.mark.needs_audio
def test_operator_modal_bake_writes_once_and_is_one_undo_step(scene, tmp_path, monkeypatch):
    import time
    scene.render.fps = 30
    head = load_head()
    bpy.context.view_layer.objects.active = head
    _file_source(scene, make_wav(tmp_path / "line.wav", seconds=1.0))
    before = snapshot(head)
    op = _invoke_modal(monkeypatch, bpy.context)
    deadline = time.monotonic() + 300
    while not op._job.done and time.monotonic() < deadline:
        assert _event(op, "TIMER") == {"RUNNING_MODAL"}
        assert snapshot(head) == before  # nothing is written while the worker runs
        time.sleep(0.05)
    assert _event(op, "TIMER") == {"FINISHED"}  # the whole result, written in this one call
    assert api.takes(head)["main"]["frames"] == 30
    assert "Baked 30 frames" in scene.speech_to_face.last_report

    # The operator is one undo step: one Undo gives back the scene before the bake, Redo the bake.
    reset_scene()
    scene = bpy.context.scene
    head = load_head()
    bpy.context.view_layer.objects.active = head
    _file_source(scene, make_wav(tmp_path / "line.wav", seconds=1.0))
    bpy.ops.ed.undo_push(message="before the bake")
    before = snapshot(head)
    assert bpy.ops.speech_to_face.bake("EXEC_DEFAULT", True) == {"FINISHED"}  # True: push undo, as the UI does
    baked = snapshot(head)
    upper = len(bake.takes(head)["main"]["upper_face_keys"])
    assert baked != before and len(baked["keys"]) == 25 + upper  # basis + 24 frames (1 s at 24 fps) + upper face
    win = bpy.context.window_manager.windows[0]
    with bpy.context.temp_override(window=win, screen=win.screen):
        assert bpy.ops.ed.undo() == {"FINISHED"}
    assert snapshot(bpy.data.objects["Head"]) == before
    with bpy.context.temp_override(window=win, screen=win.screen):
        assert bpy.ops.ed.redo() == {"FINISHED"}
    assert snapshot(bpy.data.objects["Head"]) == baked


@pytest.mark.needs_audio
def test_hama_missing_falls_back_to_mel_and_says_so(scene, wav, monkeypatch):
    monkeypatch.setitem(engine._capabilities, "hama", False)
    head = load_head()
    _strip(scene, wav, 1)
    bpy.context.view_layer.objects.active = head
    assert any("using the mel front end" in n for n in status.plan(bpy.context).notes)
    result = api.bake(head)
    assert "encoder=mel" in result.description
    assert any("using the mel front end" in w for w in result.warnings)


# --- expression controls, regions and the upper-face layer (issue: expressive face) ---------------

@pytest.mark.needs_audio
def test_upper_face_layer_is_its_own_keys_and_regions_apply(scene, wav, animator):
    scene.render.fps = 24
    head = load_head()
    result = api.bake(head, str(wav), start_frame=1, seed=3)
    record = bake.takes(head)["main"]
    from core import upper_face
    assert [n.split("_upper_", 1)[1] for n in record["upper_face_keys"]] == list(upper_face.KEY_NAMES)
    assert result.shape_keys == result.frames + len(upper_face.KEY_NAMES)
    # the lips' keys alone equal the core's prediction without the layer; the layer's keys add the rest
    expected = animator.animate(str(wav), bake.neutral_vertices(head), fps=24.0, seed=3)
    lips_only = animator.animate(str(wav), bake.neutral_vertices(head), fps=24.0, upper_face=False)
    for i in (0, 11, 30):
        got = evaluated_vertices(head, 1 + i)
        assert np.abs(got - expected.vertices[i]).max() < 1e-5, i
    # muting the layer's keys leaves exactly the lips (it can be reworked on its own)
    for name in record["upper_face_keys"]:
        head.data.shape_keys.key_blocks[name].mute = True
    assert np.abs(evaluated_vertices(head, 12) - lips_only.vertices[11]).max() < 1e-5
    # without the layer no such keys; a jaw and lips of 0 keep the chin nearly still
    from core import flame
    neutral = bake.neutral_vertices(head)
    chin_vertex = int(np.argmin(np.linalg.norm(neutral - flame.load_topology().landmarks(neutral)[8], axis=1)))
    chin_travel = np.ptp(lips_only.vertices[:, chin_vertex], axis=0).max()
    api.bake(head, str(wav), start_frame=1, upper_face_layer=False, jaw=0.0, lips=0.0)
    record = bake.takes(head)["main"]
    assert record["upper_face_keys"] == [] and record["jaw"] == 0.0
    chin = np.array([evaluated_vertices(head, f)[chin_vertex] for f in range(1, 37)])
    assert np.ptp(chin, axis=0).max() < 0.2 * chin_travel


@pytest.mark.parametrize("settings, fragment", [
    (dict(emotion="furious"), "Unknown emotion"), (dict(emotion="happy:2"), "between 0 and 1"),
    (dict(style=3.0), "between -1 and 1"), (dict(jaw=-1.0), "jaw intensity")])
def test_bad_expression_settings_change_nothing(scene, settings, fragment):
    head = load_head()          # the settings are checked before the audio is looked for
    before = snapshot(head)
    with pytest.raises(SpeechToFaceError, match=fragment):
        api.bake(head, **settings)
    assert snapshot(head) == before


@pytest.mark.needs_audio
def test_an_emotion_needs_weights_trained_with_codes(scene, wav):
    head = load_head()
    _strip(scene, wav, 1)
    before = snapshot(head)
    if engine.load_animator(None, "hama").condition_dim:
        result = api.bake(head, emotion="0:neutral, 0.5:happy:0.8")
        assert bake.takes(head)["main"]["emotion"] == "0:neutral, 0.5:happy:0.8" and result.frames == 36
    else:   # the shipped S2L predates the codes: a clear error, nothing changed
        with pytest.raises(WeightsError, match="without emotion"):
            api.bake(head, emotion="happy")
        assert snapshot(head) == before
