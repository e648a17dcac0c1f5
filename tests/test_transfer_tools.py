"""The any-head tools on tiny settings: test heads from Blender's remeshers, the transfer
evaluation, and the shipped lip sides rebuilt from the articulation teacher."""

import json

import numpy as np
import pytest

from tests.addon_helpers import ROOT, run_tool


def test_lip_sides_asset_is_reproducible():
    pytest.importorskip("scipy")
    from tools import build_lip_sides
    with np.load(ROOT / "core" / "assets" / "lip_sides.npz") as data:
        np.testing.assert_array_equal(build_lip_sides.build(), data["vertex_side"])


def test_make_test_heads_and_evaluate_transfer(tmp_path):
    pytest.importorskip("bpy")
    heads = tmp_path / "heads"
    made = run_tool(ROOT / "tools" / "make_test_heads.py", "--only", "decimated_2k", "--out", heads)
    assert made.returncode == 0, made.stderr
    with np.load(heads / "decimated_2k.npz") as d:
        assert 1500 < len(d["vertices"]) < 3000 and d["loop_total"].sum() == len(d["loops"])
        assert float(d["scale"]) > 0
    out = tmp_path / "transfer"
    res = run_tool(ROOT / "tools" / "evaluate_transfer.py", "--heads", "decimated_2k", "--seconds", "1",
                   "--test-heads", heads, "--out", out, "--ablation")
    assert res.returncode == 0, res.stderr
    report = json.loads(out.with_suffix(".json").read_text())
    (head,) = report["heads"]
    assert head["frames"] == 30 and head["vertices"] == report["heads"][0]["vertices"]
    for key in ("mean_mm", "lips_mean_mm", "lips_max_mm", "register_s", "fit_face_mm", "lips_max_outside_bridge_mm",
                "lips_max_either_lip_mm", "lips_max_exact_template_mm"):
        assert np.isfinite(head[key]) and head[key] >= 0
    assert head["lips_vertices"] > 20
    # The split never drops a vertex from the full maximum; the decimated head keeps its slit open.
    assert head["lips_max_outside_bridge_mm"] <= head["lips_max_mm"] and head["bridge_vertices"] < 5
    assert head["lips_worst"]["error_mm"] == round(head["lips_max_mm"], 2)
    assert 0 < head["fitted_lips_vertex_mm"]["mean"] < head["template_lips_vertex_mm"]["mean"]
    assert head["ablation"]["as shipped"]["lips_max_mm"] == round(head["lips_max_mm"], 2)
    assert len(head["ablation"]) == 6
    md = out.with_suffix(".md").read_text()
    assert "decimated_2k" in md and "## Where the largest lip error is" in md and "## Variants" in md


def _write_obj(path, vertices, loops, starts, totals):
    with open(path, "w") as fh:
        for x in vertices:
            fh.write("v %.9g %.9g %.9g\n" % tuple(x))
        for s, t in zip(starts, totals):
            fh.write("f " + " ".join(str(i + 1) for i in loops[s:s + t]) + "\n")
    return path


def test_bake_any_head_tool(tmp_path):
    pytest.importorskip("bpy")
    from tests.addon_helpers import make_wav
    heads = tmp_path / "heads"
    assert run_tool(ROOT / "tools" / "make_test_heads.py", "--only", "decimated_2k", "--out", heads).returncode == 0
    with np.load(heads / "decimated_2k.npz") as d:
        obj = _write_obj(tmp_path / "character.obj", d["vertices"], d["loops"], d["loop_start"], d["loop_total"])
    wav = make_wav(tmp_path / "line.wav", seconds=0.5)
    out = tmp_path / "baked.blend"
    res = run_tool(ROOT / "tools" / "bake_any_head.py", "--mesh", obj, "--audio", wav, "--out", out, "--mode", "compact")
    assert res.returncode == 0, res.stderr
    assert "FLAME template fitted (automatic landmarks)" in res.stdout and "Baked 15 frames" in res.stdout
    assert out.is_file()
    # Not a head: one clear line, nothing written.
    ball = tmp_path / "ball.obj"
    n = 40
    u, w = np.meshgrid(np.linspace(0.05, np.pi - 0.05, n), np.linspace(0, 2 * np.pi, 2 * n, endpoint=False), indexing="ij")
    v = np.stack([np.sin(u) * np.cos(w), np.sin(u) * np.sin(w), np.cos(u)], -1).reshape(-1, 3)
    quads = [[i * 2 * n + j, i * 2 * n + (j + 1) % (2 * n), (i + 1) * 2 * n + (j + 1) % (2 * n), (i + 1) * 2 * n + j]
             for i in range(n - 1) for j in range(2 * n)]
    flat = np.concatenate(quads)
    _write_obj(ball, v, flat, np.arange(len(quads)) * 4, np.full(len(quads), 4))
    bad = run_tool(ROOT / "tools" / "bake_any_head.py", "--mesh", ball, "--audio", wav, "--out", tmp_path / "ball.blend")
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("error:") and "does not look like a head" in bad.stderr
    assert not (tmp_path / "ball.blend").exists()
