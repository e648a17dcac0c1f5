"""Figures users read in the README and the model card are the ones the tools wrote to JSON.

When a tool is re-run (benchmarks, evaluation, training), these fail until the prose is updated
from the new JSON: no figure is left behind from an earlier run.
"""
import json
import subprocess
import sys

from core import weights
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _json(rel):
    return json.loads((ROOT / rel).read_text(encoding="utf-8"))


def test_readme_bake_figures_are_those_of_bake_json():
    bake = _json("docs/benchmarks/bake.json")
    per_frame, compact = bake["per_frame"], bake["compact"]
    clip = f"{bake['clip_seconds']:g} s at {bake['fps']:g} fps"
    assert f"({clip}: {per_frame['shape_keys']} keys, a {per_frame['blend_mb']:.1f} MB .blend;" in README
    assert f"{clip}: {compact['shape_keys']} keys, a {compact['blend_mb']:.1f} MB .blend" in README
    assert (f"per-frame {per_frame['total_s']:.1f} s and a {per_frame['blend_mb']:.1f} MB .blend\n"
            f"({per_frame['shape_keys']} keys); compact {compact['total_s']:.1f} s and a {compact['blend_mb']:.1f} MB "
            f".blend ({compact['shape_keys']} keys, max error {compact['max_error_m'] * 1000:.2f} mm against a "
            f"{compact['error_bound_m'] * 1000:.2f} mm\nbound)") in README


def test_readme_zip_size_is_that_of_extension_json():
    ext = _json("docs/benchmarks/extension.json")
    assert f"{ext['zip']} ({ext['zip_mb']} MB: docs/benchmarks/extension.json)" in README


def test_model_card_is_what_model_card_py_writes(tmp_path):
    """weights/MODEL_CARD.md holds exactly the tool's output from the committed JSON."""
    out = tmp_path / "card.md"
    corpus = tmp_path / "no-corpus"  # the committed card was written without the corpus on disk
    done = subprocess.run([sys.executable, "tools/model_card.py", "--corpus", str(corpus), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    committed = (weights.DEFAULT_DIR / "MODEL_CARD.md").read_text(encoding="utf-8")
    if "From the corpus manifest" in committed:  # written with the corpus: compare what does not need it
        committed = committed.split("## Evaluation", 1)[1]
        written = out.read_text(encoding="utf-8").split("## Evaluation", 1)[1]
    else:
        written = out.read_text(encoding="utf-8")
    assert written == committed, "weights/MODEL_CARD.md is stale: run tools/model_card.py"


def test_model_card_reads_its_figures(tmp_path):
    """Change a figure in the JSON and the card changes with it: nothing is typed into the tool."""
    import shutil
    wdir, edir = tmp_path / "weights", tmp_path / "eval"
    shutil.copytree(weights.DEFAULT_DIR, wdir)
    shutil.copytree(ROOT / "docs" / "eval", edir)
    manifest = json.loads((wdir / "manifest.json").read_text())
    manifest["networks"]["s2d"]["validation"]["DE_mm"] = 0.987654
    manifest["networks"]["s2l_hama"]["epochs_run"] = 271
    manifest["networks"]["s2l_hama"]["lr"] = 0.00321
    # A training log as the trainers write it (weights/logs/), with its digest in the manifest.
    entry = manifest["networks"]["s2d"]
    log = {"network": "s2d", "commands": ["python tools/train_s2d.py --corpus data/corpus --run-dir runs/x"],
           "best_epoch": entry["epochs"], "epochs_run": 3, "early_stopped": False,
           "epochs": [{**entry["validation"], "epoch": e} for e in (1, 2, 3)]}
    (wdir / "logs").mkdir(exist_ok=True)
    (wdir / "logs" / "s2d.json").write_text(json.dumps(log))
    entry.update(log="logs/s2d.json", log_sha256=weights.file_sha256(wdir / "logs" / "s2d.json"))
    (wdir / "manifest.json").write_text(json.dumps(manifest))
    ev = json.loads((edir / "eval_hama.json").read_text())
    ev["splits"]["test"]["model"]["dense"]["DE"] = 0.000777777
    (edir / "eval_hama.json").write_text(json.dumps(ev))
    real = json.loads((edir / "real_speech.json").read_text())
    real["encoders"]["mel"]["summary"]["bilabials_sealed"] = 29
    (edir / "real_speech.json").write_text(json.dumps(real))
    done = subprocess.run([sys.executable, "tools/model_card.py", "--weights", str(wdir), "--eval", str(edir),
                           "--corpus", str(tmp_path / "none"), "--out", str(tmp_path / "card.md")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    card = (tmp_path / "card.md").read_text()
    assert "| 0.987 |" in card or "| 0.988 |" in card                    # S2D validation DE
    assert "and the model's test dense DE" in card and "0.988 mm now" in card
    runs = [e["epochs_run"] for e in manifest["networks"].values() if "epochs_run" in e]
    assert f"{min(runs)}-271 epochs run" in card                         # from epochs_run
    assert "S2L used Adam lr " in card and "0.00321 (the paper" in card
    assert "dense DE 0.778 mm" in card                                  # eval_hama.json
    assert "seals the lips at 29 of" in card                   # real_speech.json
    assert "  python tools/train_s2d.py --corpus data/corpus --run-dir runs/x" in card  # logs/s2d.json
    assert "3 epochs logged" in card
    # A log that is not the one the manifest's digest names is refused.
    (wdir / "logs" / "s2d.json").write_text(json.dumps({**log, "best_epoch": 1}))
    done = subprocess.run([sys.executable, "tools/model_card.py", "--weights", str(wdir), "--eval", str(edir),
                           "--corpus", str(tmp_path / "none"), "--out", str(tmp_path / "card2.md")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "differs from the digest" in done.stderr


def test_core_benchmark_tool_on_tiny_settings(tmp_path):
    """tools/benchmark.py (docs/benchmarks/core.json) end to end on a 2 s clip and a 3 s stream."""
    out = tmp_path / "core.json"
    done = subprocess.run([sys.executable, "tools/benchmark.py", "--seconds", "2", "--long-minutes", "0.05",
                           "--backends", "numpy,torch", "--encoders", "mel", "--fps", "25", "--repeats", "1",
                           "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text())
    runs = report["runs"]
    assert [(r["backend"], r["encoder"], r["fps"]) for r in runs] == [("numpy", "mel", 25.0), ("torch", "mel", 25.0),
                                                                        ("numpy", "hama", 30.0)]
    assert [r["frames"] for r in runs] == [50, 50, 90]  # 2 s at 25 fps; the 3 s stream at 30 fps
    for r in runs:
        e2e = r["end_to_end"]
        assert e2e["x_realtime"] > 0 and e2e["wall_s"] > 0 and e2e["cpu_s"] > 0 and r["peak_rss_mb"] > 50
        assert "trained: the bundled weights" in r["weights"] and len(r["loadavg_before"]) == 3
    for r in runs[:2]:   # every stage of the throughput runs
        assert set(r["stages"]) == {"resample", "loudness", "encoder", "s2l_networks", "s2d"}
        assert all(st["x_realtime"] > 0 for st in r["stages"].values())
    parity = report["parity"]
    assert parity["s2d_regrouped_vs_layer_by_layer"]["max_abs_m"] < 1e-6
    assert parity["hama_numpy_vs_native"]["argmax_agreement"] > 0.99
