"""ARKit-52 output: the shipped basis, the bounded solver (bounds, closures, silence), the Live
Link Face CSV and JSON files, ARKit names on other rigs, and keying a mesh in Blender."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from core import arkit, lip_aperture
from core.flame import load_topology
from tests.addon_helpers import PYTHON, ROOT

# shapes of one side (jawLeft / mouthLeft are directions: both sides move to the left)
LEFT_RIGHT = [n[:-4] for n in arkit.NAMES if n.endswith("Left") and n not in ("jawLeft", "mouthLeft")]


@pytest.fixture(scope="module")
def basis():
    return arkit.load_basis()


def test_basis_names_shape_and_sides(basis):
    assert len(arkit.NAMES) == 52 == len(set(arkit.NAMES))
    assert arkit.NAMES[:2] == ("eyeBlinkLeft", "eyeLookDownLeft") and arkit.NAMES[-1] == "tongueOut"
    assert arkit.NAMES.index("jawOpen") == 17 and arkit.NAMES.index("browDownLeft") == 41
    assert basis.names == arkit.NAMES and basis.fields.shape == (52, 5023, 3)
    peak = np.linalg.norm(basis.fields, axis=-1).max(axis=1)
    assert peak[arkit.NAMES.index("tongueOut")] == 0.0            # FLAME has no tongue
    others = np.delete(peak, arkit.NAMES.index("tongueOut"))
    assert others.min() > 0.001 and others.max() < 0.03           # 1 mm .. 3 cm at weight 1
    x = load_topology().template[:, 0]
    for base in LEFT_RIGHT:   # Left moves the character's left (+X) more than its right
        for side, sign in (("Left", 1), ("Right", -1)):
            m = np.linalg.norm(basis.fields[arkit.NAMES.index(base + side)], axis=-1)
            assert (m * (sign * x > 0)).sum() > 3 * (m * (sign * x < 0)).sum(), base + side
    topo = load_topology()
    chin = int(np.argmin(np.linalg.norm(topo.template - topo.landmarks(topo.template)[8], axis=1)))
    for name, sign in (("jawLeft", 1), ("jawRight", -1), ("mouthLeft", 1), ("mouthRight", -1)):
        field = basis.fields[arkit.NAMES.index(name)]
        assert sign * field[:, 0].sum() > 0, name
    assert basis.fields[arkit.NAMES.index("jawLeft"), chin, 0] > 0.003


def test_solver_recovers_weights_within_bounds(basis):
    rng = np.random.default_rng(0)
    T = 40
    truth = np.zeros((T, 52), np.float32)
    t = np.linspace(0, np.pi, T)
    for name, amp in (("jawOpen", 0.7), ("mouthSmileLeft", 0.5), ("mouthFunnel", 0.4), ("browInnerUp", 0.6)):
        truth[:, arkit.NAMES.index(name)] = amp * np.sin(t) ** 2
    d = basis.dense(truth)
    w = arkit.solve(d + rng.normal(0, 1e-5, d.shape).astype(np.float32))
    assert w.shape == (T, 52) and w.dtype == np.float32
    assert w.min() >= 0.0 and w.max() <= 1.0
    assert np.abs(w - truth).max() < 0.05
    # beyond the box: 1.6 x a full jaw opening is clipped to 1, never more
    over = arkit.solve(basis.dense(np.eye(52, dtype=np.float32)[[17]] * 1.6))
    assert over[0, 17] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        arkit.solve(np.zeros((3, 100, 3)))


def test_solver_silence_is_zero():
    w = arkit.solve(np.zeros((25, 5023, 3), np.float32))
    assert w.shape == (25, 52) and not w.any()
    assert arkit.solve(np.zeros((0, 5023, 3))).shape == (0, 52)


def test_bilabial_closure_survives(basis):
    """The teacher says 'apa': at the p the lips touch; so must the mesh rebuilt from the weights."""
    pytest.importorskip("scipy")
    from core.corpus import articulation, deformers
    from core.corpus.engines import Phone
    ident = deformers.identity_basis("template", load_topology().template)
    phones = [Phone(0.0, 0.2, ""), Phone(0.2, 0.45, "a"), Phone(0.45, 0.6, "p"), Phone(0.6, 0.85, "a"),
              Phone(0.85, 1.2, "")]
    fps = 30.0
    teacher = ident.dense(articulation.articulate(phones, 1.2, fps, ident))
    w = arkit.solve(teacher)
    rebuilt = ident.neutral[None] + basis.dense(w)
    t = np.arange(len(w)) / fps
    at_p = (t >= 0.45) & (t < 0.6)
    vowel = (t >= 0.25) & (t < 0.4)
    assert lip_aperture.aperture(rebuilt[at_p]).min() <= 0.0005
    assert lip_aperture.aperture(rebuilt[vowel]).max() > 0.004     # and the vowels open
    assert w[at_p, arkit.NAMES.index("mouthClose")].max() > 0.05
    assert w[vowel, arkit.NAMES.index("jawOpen")].max() > 0.3


def test_live_link_csv_layout(tmp_path):
    w = np.zeros((35, 52), np.float32)
    w[:, arkit.NAMES.index("jawOpen")] = np.linspace(0, 1, 35)
    path = arkit.write_live_link_csv(tmp_path / "take.csv", w, fps=30)
    rows = list(csv.reader(open(path, newline="")))
    header = rows[0]
    assert header[:2] == ["Timecode", "BlendShapeCount"] and len(header) == 2 + 52 + 9
    assert header[2] == "EyeBlinkLeft" and header[2 + 17] == "JawOpen" and header[53] == "TongueOut"
    assert header[54:] == ["HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                           "RightEyeYaw", "RightEyePitch", "RightEyeRoll"]
    assert len(rows) == 36 and all(len(r) == len(header) for r in rows)
    assert rows[1][0] == "00:00:00:00.000" and rows[31][0] == "00:00:01:00.000" and rows[35][0] == "00:00:01:04.000"
    assert {r[1] for r in rows[1:]} == {"61"}
    assert float(rows[35][header.index("JawOpen")]) == pytest.approx(1.0)
    assert arkit.timecode(30 * 3661 + 7, 30) == "01:01:01:07.000"


def test_json_roundtrip_and_errors(tmp_path):
    w = np.random.default_rng(1).uniform(0, 1, (12, 52)).astype(np.float32)
    p = arkit.write_json(tmp_path / "take.json", w, fps=25)
    back, fps = arkit.read_json(p)
    assert fps == 25 and np.allclose(back, w, atol=1e-6)
    with pytest.raises(ValueError):
        arkit.write_json(tmp_path / "bad.json", w[:, :51], fps=25)
    with pytest.raises(ValueError):
        arkit.write_live_link_csv(tmp_path / "bad.csv", w[None], fps=25)


@pytest.mark.parametrize("key,expected", [
    ("jawOpen", "jawOpen"), ("JAWOPEN", "jawOpen"), ("JawOpen", "jawOpen"), ("jaw_open", "jawOpen"),
    ("blendShape1.mouthSmileLeft", "mouthSmileLeft"), ("Face.eyeBlinkRight", "eyeBlinkRight"),
    ("ARKit_browInnerUp", "browInnerUp"), ("arkit_cheekPuff", "cheekPuff"),
    ("eyeBlink_L", "eyeBlinkLeft"), ("mouthSmile_R", "mouthSmileRight"), ("browDown_L", "browDownLeft"),
    ("MouthSmile_Left", "mouthSmileLeft"), ("mouthRollUpper", "mouthRollUpper"),
    ("mouthLeft", "mouthLeft"), ("tongueOut.001", "tongueOut"),
    ("Basis", None), ("A01_Brow_Inner_Up", None), ("jawOpenWide", None), ("smile", None), ("", None),
])
def test_arkit_name_variants(key, expected):
    assert arkit.arkit_name(key) == expected


def test_match_prefers_exact_name():
    found = arkit.match_shape_keys(["Basis", "JawOpen", "jawOpen", "eyeBlink_L", "extra"])
    assert found == {"jawOpen": "jawOpen", "eyeBlinkLeft": "eyeBlink_L"}


def test_weights_from_audio_runs_the_networks_on_the_template(tmp_path):
    from core.pipeline import Animator
    from tests.addon_helpers import NO_WEIGHTS, speechlike
    animator = Animator.load(NO_WEIGHTS, "mel", allow_random=True)
    w = arkit.weights_from_audio(animator, speechlike(1.0, 16000), 25, sample_rate=16000)
    assert w.shape == (25, 52) and w.min() >= 0 and w.max() <= 1 and w.any()


def test_export_tool_writes_both_files(tmp_path):
    from tests.addon_helpers import NO_WEIGHTS, make_wav
    wav = make_wav(tmp_path / "speech.wav", seconds=1.0, rate=16000)
    done = subprocess.run([PYTHON, str(ROOT / "tools" / "export_arkit.py"), "--audio", str(wav), "--csv",
                           str(tmp_path / "t.csv"), "--json", str(tmp_path / "t.json"), "--fps", "24",
                           "--encoder", "mel", "--weights", NO_WEIGHTS, "--allow-random"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    w, fps = arkit.read_json(tmp_path / "t.json")
    assert fps == 24 and w.shape == (24, 52)
    assert len(list(csv.reader(open(tmp_path / "t.csv")))) == 25
    bad = subprocess.run([PYTHON, str(ROOT / "tools" / "export_arkit.py"), "--audio", str(tmp_path / "none.wav"),
                          "--csv", str(tmp_path / "x.csv"), "--encoder", "mel", "--weights", NO_WEIGHTS,
                          "--allow-random"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and bad.stderr.startswith("error:") and not (tmp_path / "x.csv").exists()


BPY_SCRIPT = textwrap.dedent("""
    import sys
    import bpy
    import numpy as np
    sys.path.insert(0, {root!r})
    from blender_addon import arkit_target, compat
    from core import arkit
    from core.errors import SpeechToFaceError

    bpy.ops.wm.read_factory_settings(use_empty=True)
    mesh = bpy.data.meshes.new("Char")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0)], [], [(0, 1, 3, 2)])
    obj = bpy.data.objects.new("Char", mesh)
    bpy.context.scene.collection.objects.link(obj)
    for name in ("Basis", "jawOpen", "ARKit_mouthClose", "blendShape1.eyeBlink_L", "MouthSmile_R", "freckles"):
        kb = obj.shape_key_add(name=name, from_mix=False)
        if name != "Basis":
            kb.data[0].co = (0.0, 0.0, 1.0)
    obj.data.shape_keys.key_blocks["freckles"].value = 0.3
    user_action = bpy.data.actions.new("users_own")
    obj.data.shape_keys.animation_data_create().action = user_action

    try:
        arkit_target.write_weights(bpy.data.objects.new("Empty", None), np.zeros((3, 52)), start_frame=1)
        raise SystemExit("an empty was accepted")
    except SpeechToFaceError:
        pass

    T = 6
    w = np.zeros((T, 52), np.float32)
    for k, name in enumerate(("jawOpen", "mouthClose", "eyeBlinkLeft", "mouthSmileRight", "browDownLeft")):
        w[:, arkit.NAMES.index(name)] = np.linspace(0.1, 0.6, T) + 0.05 * k
    record = arkit_target.write_weights(obj, w, start_frame=10)
    assert sorted(record["found"]) == ["eyeBlinkLeft", "jawOpen", "mouthClose", "mouthSmileRight"], record
    assert len(record["missing"]) == 48 and "browDownLeft" in record["missing"]
    key = obj.data.shape_keys
    action, slot = compat.assigned(key)
    assert action.name == record["action"] and action.name.startswith("S2F_ARKit_")
    paths = sorted(fc.data_path for fc in compat.fcurves(action, slot, ensure=False))
    assert paths == sorted('key_blocks["%s"].value' % k for k in record["found"].values()), paths
    for i in range(T):
        bpy.context.scene.frame_set(10 + i)
        for name, kname in record["found"].items():
            got = key.key_blocks[kname].value
            assert abs(got - w[i, arkit.NAMES.index(name)]) < 1e-5, (name, i, got)
    bpy.context.scene.frame_set(9)
    assert key.key_blocks["jawOpen"].value == 0.0
    assert abs(key.key_blocks["freckles"].value - 0.3) < 1e-6           # untouched
    assert bpy.data.actions["users_own"].use_fake_user                  # kept
    # a re-bake replaces its own Action only; removing it gives the user's Action back
    again = arkit_target.write_weights(obj, w[:3], start_frame=1)
    assert len([a for a in bpy.data.actions if a.name.startswith("S2F_ARKit_")]) == 1
    assert arkit_target.remove_bake(obj)
    assert compat.assigned(key)[0] == bpy.data.actions["users_own"]
    assert not [a for a in bpy.data.actions if a.name.startswith("S2F_ARKit_")]
    print("REPORT", arkit_target.report(again))

    # a FLAME head given the 52 shapes as its own keys: Blender's result equals core's inverse
    from blender_addon import api
    head = api.load_head({head!r}, name="Character")
    head.scale = (0.01, 0.01, 0.01)              # object transforms do not matter (local space)
    added = arkit_target.add_basis_keys(head, prefix="ARKit_")
    assert len(added) == 52 and arkit_target.add_basis_keys(head, prefix="ARKit_") == []
    rec = arkit_target.write_weights(head, w, start_frame=1)
    assert len(rec["found"]) == 52
    bpy.context.scene.frame_set(4)
    mesh = head.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
    got = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", got)
    from blender_addon import bake
    rest = bake.neutral_vertices(head)
    want = rest + np.tensordot(w[3], arkit.fields_for_head(rest), axes=(0, 0))
    err = np.abs(got.reshape(-1, 3) - want).max()
    assert err < 1e-5, err
    print("HEAD OK", err)

    # glTF keeps the shape keys and their animation (round trip through Blender's exporter)
    for o in bpy.context.view_layer.objects:
        o.select_set(o == head)
    bpy.context.view_layer.objects.active = head
    assert bpy.ops.export_scene.gltf(filepath={glb!r}, use_selection=True, export_morph=True,
                                     export_animations=True) == {{"FINISHED"}}
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.ops.import_scene.gltf(filepath={glb!r}) == {{"FINISHED"}}
    back = next(o for o in bpy.data.objects if o.type == "MESH")
    names = [kb.name for kb in back.data.shape_keys.key_blocks]
    assert arkit.match_shape_keys(names).keys() == set(arkit.NAMES), names[:5]
    for i in (1, 3, 5):
        bpy.context.scene.frame_set(1 + i)
        for name in ("jawOpen", "mouthClose", "eyeBlinkLeft", "mouthSmileRight"):
            got = back.data.shape_keys.key_blocks["ARKit_" + name].value
            assert abs(got - w[i, arkit.NAMES.index(name)]) < 1e-3, (name, i, got)
    print("GLTF OK")
""")


def test_blender_keys_only_arkit_named_keys(tmp_path):
    if importlib.util.find_spec("bpy") is None:
        pytest.skip("bpy wheel not installed")
    script = tmp_path / "arkit_bpy.py"
    script.write_text(BPY_SCRIPT.format(root=str(ROOT), head=str(ROOT / "core" / "assets" / "heads" / "sample_neutral.ply"),
                                        glb=str(tmp_path / "character.glb")))
    done = subprocess.run([PYTHON, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "REPORT keyed 4 of 52 ARKit shapes; missing:" in done.stdout and "HEAD OK" in done.stdout
    assert "GLTF OK" in done.stdout
