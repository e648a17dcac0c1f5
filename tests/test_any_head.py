"""Any head in Blender (bpy 5.0.1 wheel): register the FLAME template to a head of another
topology, bake transferred motion as shape keys, lower teeth follow the jaw; clear errors."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from tests.addon_helpers import evaluated_vertices, import_addon, make_wav, reset_scene  # noqa: E402

TINY = dict(nodes=120, samples=6000, smooth_schedule=(10.0, 1.0, 0.1), iterations_per_stage=2)


def _object(name, vertices, loops, starts, totals):
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", np.asarray(vertices, np.float32).ravel())
    mesh.loops.add(len(loops))
    mesh.loops.foreach_set("vertex_index", np.asarray(loops, np.int32))
    mesh.polygons.add(len(starts))
    mesh.polygons.foreach_set("loop_start", np.asarray(starts, np.int32))
    mesh.polygons.foreach_set("loop_total", np.asarray(totals, np.int32))
    mesh.update(calc_edges=True)
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


@pytest.fixture(scope="module")
def decimated():
    """The sample FLAME head decimated by Blender (about 2k vertices), in centimetres, tilted."""
    from core import meshio
    from tools import make_test_heads
    v, f = meshio.read_mesh(make_test_heads.HEADS / "sample_neutral.ply")
    co, loops, starts, totals = make_test_heads.remesh(v, f, [("DECIMATE", {"ratio": 0.4})])
    return 100.0 * co, loops, starts, totals


@pytest.fixture
def head(decimated):
    reset_scene()
    import_addon()
    return _object("Character", *decimated)


def _config():
    from core import registration
    return registration.FitConfig(**TINY)


def test_register_and_bake_any_head(head, tmp_path):
    from blender_addon import any_head, api
    head.shape_key_add(name="Basis")
    smile = head.shape_key_add(name="my_smile")
    smile.value = 0.0
    reg = any_head.register(head, config=_config())
    assert any_head.is_registered(head) and reg.fit_face_mm < 2.5
    assert head.data.attributes.get(any_head.ATTR_TRIANGLE) is not None
    teeth = bpy.data.objects.new("LowerTeeth", None)
    bpy.context.scene.collection.objects.link(teeth)
    wav = make_wav(tmp_path / "line.wav", seconds=1.0)
    result = any_head.bake(head, str(wav), start_frame=1, jaw_parts=[teeth])
    upper = api.takes(head)["main"]["upper_face_keys"]          # the upper-face layer, moved to this head
    assert upper and result.frames == 24 and result.shape_keys == 24 + len(upper)
    names = [kb.name for kb in head.data.shape_keys.key_blocks]
    assert names[:2] == ["Basis", "my_smile"]            # the user's keys are kept
    assert api.takes(head)["main"]["target"] == "any"
    rest = evaluated_vertices(head, 0)
    motion = max(np.abs(evaluated_vertices(head, f) - rest).max() for f in range(1, 25))
    assert motion > 0.01                                   # > 0.1 mm in centimetres: the face moves
    assert teeth.animation_data is not None and teeth.animation_data.action is not None
    # Re-bake replaces the take; remove leaves the user's keys.
    any_head.bake(head, str(wav), start_frame=1, mode="COMPACT")
    api.remove_bake(head)
    assert [kb.name for kb in head.data.shape_keys.key_blocks] == ["Basis", "my_smile"]


def test_bake_needs_registration(head, tmp_path):
    from blender_addon import any_head
    from blender_addon.engine import errors
    with pytest.raises(errors.SpeechToFaceError, match="not registered"):
        any_head.bake(head, str(make_wav(tmp_path / "a.wav", seconds=0.5)))
    assert head.data.shape_keys is None


def test_edited_mesh_must_be_registered_again(head, tmp_path):
    import bmesh
    from blender_addon import any_head
    from blender_addon.engine import errors
    any_head.register(head, config=_config())
    bm = bmesh.new()
    bm.from_mesh(head.data)
    bm.verts.ensure_lookup_table()
    bm.verts.remove(bm.verts[0])
    bm.to_mesh(head.data)
    bm.free()
    with pytest.raises(errors.TopologyError, match="register it again"):
        any_head.bake(head, str(make_wav(tmp_path / "a.wav", seconds=0.5)))


def test_not_a_head_leaves_the_object_alone():
    from blender_addon import any_head
    from blender_addon.engine import errors
    reset_scene()
    import_addon()
    bpy.ops.mesh.primitive_uv_sphere_add(segments=64, ring_count=32, radius=0.1)
    ball = bpy.context.active_object
    before = len(ball.data.attributes)
    with pytest.raises(errors.NotAHeadError, match="does not look like a head"):
        any_head.register(ball, config=_config())
    assert not any_head.is_registered(ball) and len(ball.data.attributes) == before


def test_operators_guided_landmarks_and_bake(head, tmp_path):
    """The panel's path: landmark empties placed on the face -> fit -> bake from the audio file."""
    from core import flame, meshio
    from blender_addon import any_head, any_head_ui
    from tools import make_test_heads
    v, _ = meshio.read_mesh(make_test_heads.HEADS / "sample_neutral.ply")
    lmk = flame.landmarks(v) * 100.0                      # the decimated head is in centimetres
    bpy.context.view_layer.objects.active = head
    assert "FINISHED" in bpy.ops.speech_to_face.add_landmark_empties()
    empties = any_head_ui.landmark_empties(bpy.context.scene)
    assert sorted(empties) == sorted(any_head_ui.GUIDED)
    for name, empty in empties.items():
        empty.location = lmk[any_head.registration.USER_LANDMARKS[name]]
    bpy.context.view_layer.objects.active = head
    assert "FINISHED" in bpy.ops.speech_to_face.fit_any_head()
    import json
    assert json.loads(head[any_head.PROP])["landmarks_from"] == "user"
    props = bpy.context.scene.speech_to_face
    props.audio_source = "FILE"
    props.audio_file = str(make_wav(tmp_path / "line.wav", seconds=0.5))
    props.audio_frame = 1
    assert "FINISHED" in bpy.ops.speech_to_face.bake_any_head()
    from blender_addon import api
    upper = len(api.takes(head)["main"]["upper_face_keys"])
    assert len(head.data.shape_keys.key_blocks) == 13 + upper
