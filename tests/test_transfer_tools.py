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
                   "--test-heads", heads, "--out", out)
    assert res.returncode == 0, res.stderr
    report = json.loads(out.with_suffix(".json").read_text())
    (head,) = report["heads"]
    assert head["frames"] == 30 and head["vertices"] == report["heads"][0]["vertices"]
    for key in ("mean_mm", "lips_mean_mm", "lips_max_mm", "register_s", "fit_face_mm"):
        assert np.isfinite(head[key]) and head[key] >= 0
    assert head["lips_vertices"] > 20
    assert "decimated_2k" in out.with_suffix(".md").read_text()
