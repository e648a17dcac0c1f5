"""Every bad input of the fault run gets one clear ``error:`` line (or the documented warning),
the documented exit status (1 bad input, 2 bad usage, 130 interrupted), and leaves no output
file behind, or the previous one untouched.

All cases but Ctrl-C run in ONE child process (this file is also the child's script: it runs
tools/bake.py's and tools/batch_bake.py's ``main`` once per case and records status and output),
so the whole table costs one Blender start-up plus a few tiny bakes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAD = ROOT / "core" / "assets" / "heads" / "sample_neutral.ply"
PREVIOUS = b"previous output, must survive a failed bake"
ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0   # root writes into read-only folders


# --- the inputs ----------------------------------------------------------------------------------

def _files(tmp: Path) -> dict:
    """Every bad (and a few good) input file the cases use, written once."""
    sys.path.insert(0, str(ROOT))
    from core import meshio
    from tests.addon_helpers import make_wav, write_wav
    v, f = meshio.read_mesh(HEAD)
    p = {}
    p["wav"] = make_wav(tmp / "line.wav", seconds=1.0, rate=16000)
    p["silence"] = write_wav(tmp / "silence.wav", np.zeros(16000 * 3), 16000)
    p["one_hz"] = write_wav(tmp / "one_hz.wav", np.random.default_rng(0).uniform(-.5, .5, 16000), 1)
    long = tmp / "long.wav"                      # 61 minutes of 8-bit 4 kHz: over the 60-minute limit
    import wave
    with wave.open(str(long), "wb") as w:
        w.setnchannels(1), w.setsampwidth(1), w.setframerate(4000)
        w.writeframes(bytes([128]) * (61 * 60 * 4000))
    p["long"] = long
    p["minute"] = make_wav(tmp / "minute.wav", seconds=70.0, rate=8000)   # 16,800 frames at 240 fps
    good = tmp / "head.ply"
    meshio.write_ply(good, v, f)
    data = good.read_bytes()
    (tmp / "truncated.ply").write_bytes(data[: len(data) // 2])
    header, body = data.split(b"end_header\n", 1)
    (tmp / "badcount.ply").write_bytes(header.replace(b"element vertex 5023", b"element vertex many")
                                       + b"end_header\n" + body)
    (tmp / "propfirst.ply").write_bytes(b"ply\nformat ascii 1.0\nproperty float x\nelement vertex 1\nend_header\n0\n")
    meshio.write_obj(tmp / "head.obj", v, f)
    obj = (tmp / "head.obj").read_text().splitlines()
    (tmp / "tabs.obj").write_text("\n".join(l.replace(" ", "\t") for l in obj) + "\n")
    bad = list(obj)
    bad[3] = "v 0.1 zero 0.2"
    (tmp / "word.obj").write_text("\n".join(bad) + "\n")
    nan = list(obj)
    nan[7] = "v nan 0 0"
    (tmp / "nan.obj").write_text("\n".join(nan) + "\n")
    locked = tmp / "locked.obj"
    locked.write_text("\n".join(obj) + "\n")
    locked.chmod(0)
    weights = tmp / "weights_empty"
    weights.mkdir()
    partial = tmp / "weights_no_s2l"
    partial.mkdir()
    manifest = json.loads((ROOT / "weights" / "manifest.json").read_text())
    manifest["networks"] = {k: v for k, v in manifest["networks"].items() if not k.startswith("s2l_")}
    (partial / "manifest.json").write_text(json.dumps(manifest))
    ro = tmp / "readonly"
    ro.mkdir()
    ro.chmod(0o555)
    (tmp / "a_file").write_text("x")
    (tmp / "out_is_dir.blend").mkdir()
    # manifests
    (tmp / "object.json").write_text(json.dumps({"audio": str(p["wav"])}))
    (tmp / "null.json").write_text("null")
    (tmp / "number.json").write_text("42")
    (tmp / "audio_number.json").write_text(json.dumps([{"audio": 5}]))
    (tmp / "name_list.json").write_text(json.dumps([{"audio": str(p["wav"]), "name": ["a"]}]))
    (tmp / "item_null.json").write_text(json.dumps([None]))
    (tmp / "empty.csv").write_text("")
    (tmp / "header_only.csv").write_text("audio,name\n")
    (tmp / "bom.csv").write_bytes("audio,name\n".encode("utf-8-sig") + f"{p['wav']},bom_ok\n".encode())
    rows = [{"audio": str(p["wav"]), "name": "good"},
            {"audio": str(p["wav"]), "name": "fps_inf", "fps": "inf"},
            {"audio": str(p["wav"]), "name": "unwritable", "out": str(tmp / "a_file" / "x.blend")}]
    (tmp / "mixed.json").write_text(json.dumps(rows))
    clips = tmp / "clips_collide"
    clips.mkdir()
    for name in ("take 1.wav", "take_1.wav"):
        (clips / name).write_bytes(p["wav"].read_bytes())
    return p


def _two_mesh_blend(path: Path) -> Path:
    """A .blend with two FLAME heads (made by the child, which has bpy loaded anyway)."""
    from blender_addon import api, headless
    headless.new_scene()
    api.load_head(str(HEAD), name="HeadA")
    api.load_head(str(HEAD), name="HeadB")
    headless.save_blend(str(path))
    return path


# --- the cases: (id, tool, argv, expected status, text the error/warning must contain) -----------

def cases(t: Path, all_cases: bool = False) -> list:
    wav, mesh = str(t / "line.wav"), str(HEAD)
    out = str(t / "out" / "x.blend")
    two = str(t / "two_heads.blend")

    def bake(*argv, mesh=mesh, audio=wav, out=out):
        head = ["--mesh", mesh] if mesh else []
        return [*head, "--audio", audio, "--out", out, *argv]

    c = [
        # malformed meshes
        ("ply-truncated", "bake", bake(mesh=str(t / "truncated.ply")), 1, "truncated"),
        ("ply-bad-count", "bake", bake(mesh=str(t / "badcount.ply")), 1, "bad PLY header"),
        ("ply-property-first", "bake", bake(mesh=str(t / "propfirst.ply")), 1, "property before any element"),
        ("obj-word-coordinate", "bake", bake(mesh=str(t / "word.obj")), 1, "line 4"),
        ("obj-nan", "bake", bake(mesh=str(t / "nan.obj")), 1, "NaN or infinite"),
        ("mesh-missing", "bake", bake(mesh=str(t / "nope.ply")), 1, "not found"),
        ("obj-tabs-ok", "bake", bake(mesh=str(t / "tabs.obj")), 0, "wrote"),
        ("object-with-mesh", "bake", bake("--object", "Head"), 1, "--object"),
        # weights
        ("weights-empty", "bake", bake("--weights", str(t / "weights_empty")), 1, "No trained weights"),
        ("weights-no-s2l", "bake", bake("--weights", str(t / "weights_no_s2l")), 1, "No trained weights"),
        ("weights-missing", "bake", bake("--weights", str(t / "nowhere")), 1, "not found"),
        ("weights-random-asked", "bake", bake("--weights", str(t / "weights_empty"), "--allow-random"), 0,
         "RANDOM-INITIALISED"),
        # settings out of range
        ("intensity-inf", "bake", bake("--intensity", "inf"), 1, "Intensity must be a finite"),
        ("intensity-nan", "bake", bake("--intensity", "nan"), 1, "Intensity must be a finite"),
        ("intensity-11", "bake", bake("--intensity", "11"), 1, "between 0 and 10"),
        ("intensity-negative", "bake", bake("--intensity", "-1"), 1, "between 0 and 10"),
        ("fps-0.001", "bake", bake("--fps", "0.001"), 1, "between 1 and 240"),
        ("fps-inf", "bake", bake("--fps", "inf"), 1, "finite"),
        ("fps-100000", "bake", bake("--fps", "100000"), 1, "between 1 and 240"),
        ("fps-1e9", "bake", bake("--fps", "1e9"), 1, "between 1 and 240"),
        ("start-1100000", "bake", bake("--start-frame", "1100000"), 1, "out of range"),
        ("start-1e12", "bake", bake("--start-frame", "1e12"), 1, "out of range"),
        ("start-negative", "bake", bake("--start-frame", "-5"), 1, "out of range"),
        ("start-fraction", "bake", bake("--start-frame", "1.5"), 1, "whole number"),
        ("tolerance-0", "bake", bake("--mode", "compact", "--tolerance-mm", "0"), 1, "greater than 0"),
        ("tolerance-negative", "bake", bake("--mode", "compact", "--tolerance-mm", "-1"), 1, "greater than 0"),
        ("tolerance-nan", "bake", bake("--mode", "compact", "--tolerance-mm", "nan"), 1, "finite"),
        # audio
        ("audio-header-1hz", "bake", bake(audio=str(t / "one_hz.wav")), 1, "1 Hz"),
        ("audio-over-60-min", "bake", bake(audio=str(t / "long.wav")), 1, "at most 60 minutes"),
        ("per-frame-too-large", "bake", bake("--fps", "240", audio=str(t / "minute.wav")), 1, "--mode compact"),
        ("silence-rests", "bake", bake(audio=str(t / "silence.wav")), 0, "the lips will stay at rest"),
        # outputs (checked before the bake)
        ("out-is-directory", "bake", bake(out=str(t / "out_is_dir.blend")), 1, "is a directory"),
        ("out-parent-is-file", "bake", bake(out=str(t / "a_file" / "x.blend")), 1, "is a file"),
        ("out-not-blend", "bake", bake(out=str(t / "x.txt")), 1, "must be a .blend"),
        # .blend inputs
        ("blend-two-meshes", "bake", ["--blend", two, "--audio", wav, "--out", out], 1, "say which with --object"),
        ("blend-wrong-object", "bake", ["--blend", two, "--object", "Nose", "--audio", wav, "--out", out], 1,
         "No object named"),
        # usage errors: status 2
        ("usage-unknown-option", "bake", bake("--speed", "2"), 2, "unrecognized arguments"),
        ("usage-no-audio", "bake", ["--mesh", mesh, "--out", out], 2, "--audio"),
        ("usage-fps-word", "bake", bake("--fps", "fast"), 2, "invalid float value"),
        ("usage-mesh-and-blend", "bake", bake("--blend", two), 1, "exactly one of"),
        # batch manifests
        ("batch-json-object", "batch", [str(t / "object.json"), "--out-dir", str(t / "b1")], 1, '"items"'),
        ("batch-json-null", "batch", [str(t / "null.json"), "--out-dir", str(t / "b2")], 1, "must be a JSON list"),
        ("batch-json-number", "batch", [str(t / "number.json"), "--out-dir", str(t / "b3")], 1, "must be a JSON list"),
        ("batch-audio-number", "batch", [str(t / "audio_number.json"), "--out-dir", str(t / "b4")], 1,
         "'audio' must be text"),
        ("batch-name-list", "batch", [str(t / "name_list.json"), "--out-dir", str(t / "b5")], 1,
         "'name' must be text"),
        ("batch-item-null", "batch", [str(t / "item_null.json"), "--out-dir", str(t / "b6")], 1, "item 1 is null"),
        ("batch-csv-empty", "batch", [str(t / "empty.csv"), "--out-dir", str(t / "b7")], 1, "no items"),
        ("batch-csv-header-only", "batch", [str(t / "header_only.csv"), "--out-dir", str(t / "b8")], 1, "no items"),
        ("batch-csv-bom-ok", "batch", [str(t / "bom.csv"), "--out-dir", str(t / "b9")], 0, "1 ok"),
        ("batch-rows-fail-alone", "batch", [str(t / "mixed.json"), "--out-dir", str(t / "b10")], 1,
         "1 ok, 0 skipped, 2 failed"),
        ("batch-name-collision", "batch", [str(t / "clips_collide"), "--out-dir", str(t / "b11")], 1,
         "take 1.wav and take_1.wav"),
        ("batch-takes-two-meshes", "batch", [str(t / "clips_collide"), "--takes", two], 1, "take 1.wav"),
        ("batch-takes-into-two-meshes", "batch", [str(t / "bom.csv"), "--takes", two], 1, "say which with --object"),
    ]
    if not ROOT_USER or all_cases:  # permissions do not stop root
        c += [("mesh-unreadable", "bake", bake(mesh=str(t / "locked.obj")), 1, "Cannot read mesh"),
              ("out-read-only-dir", "bake", bake(out=str(t / "readonly" / "x.blend")), 1, "cannot write in")]
    return c


# --- the child: run every case in one process ----------------------------------------------------

def _child(tmp: Path, result_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.addon_helpers import import_addon
    import_addon()
    from blender_addon import headless
    from tools import bake as bake_tool, batch_bake
    _two_mesh_blend(tmp / "two_heads.blend")
    results = {}
    for cid, tool, argv, _status, _text in cases(tmp):
        out = _out_of(argv)
        if out and not out.endswith("x.txt") and not os.path.isdir(out) and os.path.isdir(os.path.dirname(out)):
            Path(out).write_bytes(PREVIOUS)           # a previous output a failed bake must not touch
        stdout, stderr = io.StringIO(), io.StringIO()
        main = bake_tool.main if tool == "bake" else batch_bake.main
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = headless.run_main(main, argv)
            except SystemExit as exc:
                code = exc.code
        results[cid] = {"status": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(),
                        "out_bytes": Path(out).read_bytes()[:len(PREVIOUS)].hex() if out and os.path.isfile(out)
                        else None}
    result_path.write_text(json.dumps(results))


def _out_of(argv):
    for flag in ("--out",):
        if flag in argv:
            return argv[argv.index(flag) + 1]
    return None


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    pytest.importorskip("bpy")
    tmp = tmp_path_factory.mktemp("bad_input")
    (tmp / "out").mkdir()
    _files(tmp)
    result = tmp / "results.json"
    done = subprocess.run([sys.executable, __file__, str(tmp), str(result)], capture_output=True, text=True,
                          cwd=ROOT, timeout=900)
    assert done.returncode == 0 and result.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    return tmp, json.loads(result.read_text())


def _case_ids():
    return [c[0] for c in cases(Path("/t"), all_cases=True)] + ["ctrl-c"]


@pytest.mark.parametrize("cid", _case_ids())
def test_bad_input(outcomes, cid):
    tmp, results = outcomes
    if cid == "ctrl-c":
        return _ctrl_c(tmp)
    case = {c[0]: c for c in cases(tmp)}.get(cid)
    if case is None:
        pytest.skip("permissions do not stop root")
    _, tool, argv, status, text = case
    r = results[cid]
    assert r["status"] == status, r
    errors = [line for line in r["stderr"].splitlines() if line.startswith("error:")]
    if status == 0:
        assert errors == [], r
        assert text in r["stdout"] + r["stderr"], r
        if cid == "silence-rests":
            assert f"warning: The audio of silence.wav is silent" in r["stdout"]
    elif cid == "batch-rows-fail-alone":   # items fail one by one (documented): no error line, status 1
        assert errors == [] and text in r["stdout"], r
        assert r["stdout"].count(": FAILED: ") == 2, r
    else:
        assert len(errors) == 1 and text in errors[0], r
        out = _out_of(argv)
        if out and r["out_bytes"] is not None:
            assert bytes.fromhex(r["out_bytes"]) == PREVIOUS, "a failed bake changed the previous output"
    assert "Traceback" not in r["stderr"] + r["stdout"]
    if tool == "batch" and cid == "batch-rows-fail-alone":
        summary = json.loads((tmp / "b10" / "batch_summary.json").read_text())
        assert (summary["ok"], summary["failed"]) == (1, 2)
        assert {i["name"]: i["status"] for i in summary["items"]} == {
            "good": "ok", "fps_inf": "failed", "unwritable": "failed"}
    leftovers = [p for p in tmp.rglob("*") if ".s2f-tmp-" in p.name or p.name.endswith("@")]
    assert leftovers == []


def _ctrl_c(tmp: Path):
    """A real SIGINT in the middle of a bake: one line, status 130, the previous output intact."""
    from tests.addon_helpers import make_wav
    # five minutes in compact mode: the bake lasts well past the signal even on a fast, idle machine
    wav = make_wav(tmp / "five_minutes.wav", seconds=300.0, rate=16000)
    out = tmp / "ctrl_c" / "x.blend"
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(PREVIOUS)
    proc = subprocess.Popen([sys.executable, str(ROOT / "tools" / "bake.py"), "--mesh", str(HEAD), "--audio",
                             str(wav), "--out", str(out), "--mode", "compact", "--progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            # as from a terminal: a suite started in the background (no job control)
                            # passes SIGINT on ignored, and Python then keeps ignoring it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # signal once the bake reports progress: inside the bake, past bpy's start-up (a signal sent
    # during start-up can be lost on a loaded machine)
    before = []
    while not (before and before[-1].startswith("progress: ")):
        before.append(proc.stderr.readline())
        assert before[-1], "the bake ended before reporting progress: " + "".join(before) + proc.stdout.read()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    stderr = "".join(before) + stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 130 and errors == ["error: interrupted (nothing was written)"], stdout + stderr
    assert "Traceback" not in stderr and "progress: 100 %" not in stderr
    assert out.read_bytes() == PREVIOUS and os.listdir(out.parent) == ["x.blend"]


if __name__ == "__main__":
    _child(Path(sys.argv[1]), Path(sys.argv[2]))
