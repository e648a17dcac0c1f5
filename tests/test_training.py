"""The training and evaluation tools on a tiny generated corpus (minutes of audio, few steps)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import ROOT

PY = sys.executable


def run(*args):
    out = subprocess.run([PY, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out.stdout


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    run("tools/make_corpus.py", "--out", root, "--hours", "0.1", "--shard-seconds", "30", "--engines", "espeak")
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["stats"]["by_split"].get("val"), "tiny corpus needs a val split"
    return root


def test_s2l_resume_is_deterministic(corpus, tmp_path):
    common = ["--corpus", corpus, "--encoder", "mel", "--batch", "4", "--crop-seconds", "1.0", "--seed", "3",
              "--cache-dir", tmp_path / "cache"]
    run("tools/train_s2l.py", *common, "--run-dir", tmp_path / "a", "--epochs", "2")
    run("tools/train_s2l.py", *common, "--run-dir", tmp_path / "b", "--epochs", "1")
    out = run("tools/train_s2l.py", *common, "--run-dir", tmp_path / "b", "--epochs", "2", "--resume",
              "--export", tmp_path / "w")
    assert '"epochs": 2' in out
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    log = json.loads((tmp_path / "b" / "log.json").read_text())
    assert [e["epoch"] for e in log] == [1, 2] and all(np.isfinite(e["loss"]) for e in log)
    manifest = json.loads((tmp_path / "w" / "manifest.json").read_text())
    entry = manifest["networks"]["s2l_mel"]
    assert entry["trained"] and entry["front_end"] == "mel" and entry["cosine_loss"]
    # Feature normalisation was measured on the training features, not left at identity.
    from core import weights
    _, state, _ = weights.load_network(tmp_path / "w", "s2l_mel", "s2l")
    assert np.abs(state["feature_mean"]).max() > 0.1


def test_s2d_training_lowers_the_loss_and_evaluate_reports(corpus, tmp_path):
    out = run("tools/train_s2d.py", "--corpus", corpus, "--run-dir", tmp_path / "s2d", "--epochs", "2",
              "--steps-per-epoch", "15", "--batch", "8", "--max-val-frames", "200", "--export", tmp_path / "w")
    log = json.loads((tmp_path / "s2d" / "log.json").read_text())
    assert log[-1]["loss"] < log[0]["train_loss"], log
    run("tools/train_s2l.py", "--corpus", corpus, "--encoder", "hama", "--run-dir", tmp_path / "s2l", "--epochs", "1",
        "--batch", "4", "--crop-seconds", "1.0", "--export", tmp_path / "w", "--cache-dir", tmp_path / "cache")
    run("tools/evaluate.py", "--corpus", corpus, "--weights", tmp_path / "w", "--encoder", "hama",
        "--ablation-weights", tmp_path / "w", "--max-utterances", "3", "--out", tmp_path / "eval")
    result = json.loads((tmp_path / "eval" / "eval_hama.json").read_text())
    test = result["splits"]["test"]
    assert test["static"]["dense"]["DE"] > 0 and np.isnan(test["static"]["dense"]["DAE"])
    assert set(test) >= {"model", "static", "mean_motion", "s2d_on_true_landmarks", "ablation_no_cosine"}
    md = (tmp_path / "eval" / "eval_hama.md").read_text()
    assert "| static |" in md and "held-out language" in md
    assert list((tmp_path / "eval").glob("eval_hama_mouth_test_*.png"))


def test_budget_none_is_unlimited_and_zero_trains_nothing():
    import time
    from core.training import Budget
    assert not Budget(None).exhausted()
    zero = Budget(0)
    time.sleep(0.01)
    assert zero.exhausted()     # --resume --budget-minutes 0 --export: export without training
