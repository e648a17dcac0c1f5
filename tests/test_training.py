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
    # The trained flag comes with its evidence: the exported epoch, its validation figures and
    # the run's log, whose digest the manifest keeps.
    from core import weights
    assert weights.missing_training_evidence(entry) == []
    exported_log = weights.read_training_log(tmp_path / "w", entry)
    assert exported_log["epochs"] == log and exported_log["epochs_run"] == 2
    best = min(log, key=lambda e: e["loss"])
    assert entry["epochs"] == best["epoch"] == exported_log["best_epoch"] and entry["validation"] == best
    # Every invocation of the run, in order: the first epoch, then the resume that exported.
    first, resumed = exported_log["commands"]
    assert first.startswith("python tools/train_s2l.py") and "--resume" not in first and "--resume" in resumed
    # Feature normalisation was measured on the training features, not left at identity.
    _, state, _ = weights.load_network(tmp_path / "w", "s2l_mel", "s2l")
    assert np.abs(state["feature_mean"]).max() > 0.1
    # --init: a run starts from those weights (its first validation equals theirs, not a random
    # network's), and the manifest says where it started.
    out = run("tools/train_s2l.py", *common, "--run-dir", tmp_path / "c", "--epochs", "1", "--lr", "0",
              "--init", tmp_path / "w", "--export", tmp_path / "w2")
    again = json.loads((tmp_path / "c" / "log.json").read_text())[0]
    assert again["loss"] == pytest.approx(best["loss"], rel=1e-4)
    entry2 = json.loads((tmp_path / "w2" / "manifest.json").read_text())["networks"]["s2l_mel"]
    assert entry2["initialised_from"] == str(tmp_path / "w")
    # Feature augmentation and the lip-gap weights change what is learnt, and the manifest says so.
    tuned = ["--epochs", "1", "--init", tmp_path / "w"]
    run("tools/train_s2l.py", *common, *tuned, "--run-dir", tmp_path / "d", "--export", tmp_path / "w3",
        "--feature-shrink", "0.7", "--feature-tilt", "0.5", "--feature-warp", "0.1", "--non-speech", "0.2",
        "--gap-open-weight", "4", "--gap-closure-weight", "8", "--gap-false-closure-weight", "30")
    run("tools/train_s2l.py", *common, *tuned, "--run-dir", tmp_path / "e", "--export", tmp_path / "w4")
    entry3 = json.loads((tmp_path / "w3" / "manifest.json").read_text())["networks"]["s2l_mel"]
    assert entry3["feature_shrink"] == 0.7 and entry3["feature_tilt"] == 0.5 and entry3["feature_warp"] == 0.1
    assert entry3["non_speech"] == 0.2
    assert entry3["gap_weights"] == {"closure_weight": 8.0, "open_weight": 4.0, "open_above": 6.0,
                                     "false_closure_weight": 30.0}
    d = torch.load(tmp_path / "d" / "checkpoint.pt", weights_only=False)["model"]
    e = torch.load(tmp_path / "e" / "checkpoint.pt", weights_only=False)["model"]
    assert any(not torch.equal(d[k], e[k]) for k in d)
    # --seal-head adds a seal head to the --init network; with --seal-head-only it alone learns,
    # and the landmarks stay exactly the --init network's
    run("tools/train_s2l.py", *common, *tuned, "--run-dir", tmp_path / "f", "--export", tmp_path / "w5",
        "--seal-head", "1", "--seal-head-only", "--seal-positive-weight", "4")
    config5, state5, entry5 = weights.load_network(tmp_path / "w5", "s2l_mel", "s2l")
    assert config5["seal_head"] and entry5["seal_head"] == 1.0 and entry5["seal_head_only"]
    assert entry5["seal_positive_weight"] == 4.0 and "seal_positive_weight" not in entry3
    for k, v in state.items():
        np.testing.assert_array_equal(state5[k], v, err_msg=k)
    assert np.abs(state5["seal.weight"]).max() > 0 and state5["seal.bias"][0] != -4.0
    assert {"seal_precision", "seal_recall"} <= set(json.loads((tmp_path / "f" / "log.json").read_text())[0])
    # --codec-share: crops heard through the GSM round trip, features cached beside the plain ones
    run("tools/train_s2l.py", *common, *tuned, "--run-dir", tmp_path / "g", "--export", tmp_path / "w6",
        "--codec-share", "1")
    assert json.loads((tmp_path / "w6" / "manifest.json").read_text())["networks"]["s2l_mel"]["codec_share"] == 1.0
    cached = sorted(p.name for p in (tmp_path / "cache" / "mel").glob("*.npy"))
    assert any(n.endswith("_gsm.npy") for n in cached) and any(not n.endswith("_gsm.npy") for n in cached)
    g = torch.load(tmp_path / "g" / "checkpoint.pt", weights_only=False)["model"]
    assert any(not torch.equal(g[k], e[k]) for k in g)


def test_trained_flag_needs_its_evidence(tmp_path):
    from core import weights
    from core.numpy_runtime import random_state, s2d_parameter_shapes
    state = random_state(s2d_parameter_shapes({}), 0)
    with pytest.raises(ValueError, match="without its evidence: epochs, validation, log, log_sha256"):
        weights.save_network(tmp_path, "s2d", "s2d", {}, state, front_end="none", trained=True, training_data="x")
    with pytest.raises(ValueError, match="epochs >= 1"):
        weights.save_network(tmp_path, "s2d", "s2d", {}, state, front_end="none", trained=True, training_data="x",
                             extra={"epochs": 0, "validation": {"loss": 1, "LE_mm": 1, "DE_mm": 1, "epoch": 0},
                                    "log": "logs/s2d.json", "log_sha256": "0" * 64})
    assert not (tmp_path / "manifest.json").exists()


def _static_and_model_de(corpus_root, weights_dir) -> tuple[float, float]:
    """Dense DE (m) over all validation frames: no motion vs the exported S2D on the true landmarks."""
    from core import metrics, weights
    from core.corpus.dataset import Corpus
    from core.numpy_runtime import NumpyS2D
    cfg, state, _ = weights.load_network(weights_dir, "s2d", "s2d")
    s2d = NumpyS2D(cfg, state)
    preds, targets = [], []
    for utt in Corpus(corpus_root).utterances("val"):
        preds.append(s2d(utt.landmark_disp.astype(np.float32)))
        targets.append(utt.dense_disp())
    pred, target = np.concatenate(preds).astype(np.float64), np.concatenate(targets).astype(np.float64)
    return metrics.evaluate(np.zeros_like(target), target)["DE"], metrics.evaluate(pred, target)["DE"]


def test_s2d_training_lowers_the_loss_and_evaluate_reports(corpus, tmp_path):
    out = run("tools/train_s2d.py", "--corpus", corpus, "--run-dir", tmp_path / "s2d", "--epochs", "2",
              "--steps-per-epoch", "15", "--batch", "8", "--max-val-frames", "200", "--export", tmp_path / "w")
    log = json.loads((tmp_path / "s2d" / "log.json").read_text())
    # Validation loss falls from epoch to epoch, and the exported decoder beats the static face
    # on every validation frame's dense mesh (measured here, not read from the tool's log).
    assert log[1]["loss"] < log[0]["loss"], log
    static_de, model_de = _static_and_model_de(corpus, tmp_path / "w")
    assert model_de < 0.95 * static_de, (model_de, static_de)  # 30 steps: about 0.84
    run("tools/train_s2l.py", "--corpus", corpus, "--encoder", "hama", "--run-dir", tmp_path / "s2l", "--epochs", "1",
        "--batch", "4", "--crop-seconds", "1.0", "--export", tmp_path / "w", "--cache-dir", tmp_path / "cache")
    run("tools/evaluate.py", "--corpus", corpus, "--weights", tmp_path / "w", "--encoder", "hama",
        "--ablation-weights", tmp_path / "w", "--max-utterances", "3", "--out", tmp_path / "eval")
    result = json.loads((tmp_path / "eval" / "eval_hama.json").read_text())
    test = result["splits"]["test"]
    assert test["utterances"] == 3
    # The static face's error is the mean size of the true motion: positive, and no angle.
    assert test["static"]["dense"]["DE"] > 0 and np.isnan(test["static"]["dense"]["DAE"])
    # S2D on the true landmarks gives them back exactly on the landmarks; on the dense mesh it is
    # off by S2D's own error only, smaller than the static face's.
    assert test["s2d_on_true_landmarks"]["landmarks"]["LE"] == 0
    assert 0 < test["s2d_on_true_landmarks"]["dense"]["DE"] < test["static"]["dense"]["DE"]
    # The "ablation" here is the same network: identical figures, so both paths run the same code.
    assert test["ablation_no_cosine"] == test["model"]
    assert 0 < test["mean_motion"]["dense"]["DE"] and test["model"]["dense"]["DE"] > 0
    # The utterances are spread over the split's voices, and the manifest evidence is reported.
    assert test["voices"] == min(3, test["voices_in_split"])
    assert result["networks"]["s2d"]["epochs"] == 2 and "log_sha256" in result["networks"]["s2l_hama"]
    md = (tmp_path / "eval" / "eval_hama.md").read_text()
    assert "| static |" in md and "held-out language" in md
    assert f"{test['static']['dense']['DE'] * 1000:.3f}" in md
    assert list((tmp_path / "eval").glob("eval_hama_mouth_test_*.png"))


def test_evaluation_samples_every_voice(corpus):
    """The held-out utterances evaluated come from every voice, not the first ones in shard order."""
    sys.path.insert(0, str(ROOT / "tools"))
    import evaluate
    from core.corpus.dataset import Corpus
    metas = Corpus(corpus).metadata("train")  # the tiny corpus' largest split: several voices
    voices = sorted({m["voice_id"] for m in metas})
    assert len(voices) >= 3, voices
    n = 2 * len(voices)
    chosen = evaluate.sample_utterances(metas, n)
    by_id = {m["utt_id"]: m["voice_id"] for m in metas}
    counts = {v: sum(by_id[u] == v for u in chosen) for v in voices}
    assert len(chosen) == len(set(chosen)) == n
    per_voice = {v: sum(m["voice_id"] == v for m in metas) for v in voices}
    assert all(counts[v] == min(2, per_voice[v]) for v in voices if per_voice[v] >= 2), counts
    # Shard order alone would not have covered them all (why the sampler exists).
    assert len({m["voice_id"] for m in metas[:len(voices)]}) < len(voices)
    # Deterministic, and more than the split holds gives the whole split.
    assert evaluate.sample_utterances(metas, n) == chosen
    assert sorted(evaluate.sample_utterances(metas, 10 ** 6)) == sorted(by_id)
    for split in ("test", "test_language"):
        split_metas = Corpus(corpus).metadata(split)
        picked = evaluate.sample_utterances(split_metas, len({m["voice_id"] for m in split_metas}))
        assert {by for by in (m["voice_id"] for m in split_metas if m["utt_id"] in picked)} == \
            {m["voice_id"] for m in split_metas}


def test_budget_zero_trains_nothing_and_resume_exports(corpus, tmp_path):
    """--budget-minutes 0: no epoch on a new run; with --resume it exports the run as it stands."""
    from core.training import Budget
    assert not Budget(None).exhausted()
    common = ["--corpus", corpus, "--encoder", "mel", "--batch", "4", "--crop-seconds", "1.0",
              "--cache-dir", tmp_path / "cache", "--run-dir", tmp_path / "r"]
    out = run("tools/train_s2l.py", *common, "--budget-minutes", "0")
    assert '"epochs": 0' in out and "epoch   1" not in out
    assert not (tmp_path / "r" / "checkpoint.pt").exists()
    run("tools/train_s2l.py", *common, "--epochs", "1")
    before = (tmp_path / "r" / "checkpoint.pt").read_bytes()
    out = run("tools/train_s2l.py", *common, "--epochs", "5", "--resume", "--budget-minutes", "0",
              "--export", tmp_path / "w")
    assert '"epochs": 1' in out and "epoch   2" not in out
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == before
    entry = json.loads((tmp_path / "w" / "manifest.json").read_text())["networks"]["s2l_mel"]
    assert entry["epochs"] == entry["epochs_run"] == 1


def test_frequency_warp_is_refused_for_features_without_a_frequency_axis(tmp_path):
    out = subprocess.run([PY, "tools/train_s2l.py", "--corpus", tmp_path, "--encoder", "hama", "--run-dir",
                          tmp_path / "r", "--feature-warp", "0.1"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2 and "only the mel encoder's features have one" in out.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("flag", ["--non-speech", "--codec-share"])
def test_a_share_must_lie_between_0_and_1(tmp_path, flag):
    out = subprocess.run([PY, "tools/train_s2l.py", "--corpus", tmp_path, "--encoder", "mel", "--run-dir",
                          tmp_path / "r", flag, "1.5"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2 and f"error: {flag} is a share of the training crops or utterances" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "r").exists()


def test_a_seal_head_alone_needs_a_network_to_sit_on(tmp_path):
    out = subprocess.run([PY, "tools/train_s2l.py", "--corpus", tmp_path, "--encoder", "mel", "--run-dir",
                          tmp_path / "r", "--seal-head", "1", "--seal-head-only"], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 2 and "--seal-head-only trains a new seal head on an --init network" in out.stderr
    assert not (tmp_path / "r").exists()



def test_reteach_rebuilds_the_motion_from_the_stored_phones(corpus, tmp_path):
    """tools/reteach_corpus.py: today's teacher reproduces the stored motion (--check writes
    nothing), and a shard whose motion was lost is taught again from its metadata alone."""
    import shutil
    root = tmp_path / "corpus"
    shutil.copytree(corpus, root)
    shard = sorted((root / "shards").glob("*.npz"))[0]
    before = shard.read_bytes()
    checked = json.loads(run("tools/reteach_corpus.py", "--corpus", root, "--check").strip().splitlines()[-1])
    assert not checked["written"] and checked["largest_landmark_change_mm"] < 0.05
    assert shard.read_bytes() == before and "retaught" not in json.loads((root / "manifest.json").read_text())
    with np.load(shard) as d:
        arrays = {k: d[k] for k in d.files}
    original = arrays["coeffs"].copy()
    arrays["coeffs"][:] = 0.0
    np.savez(shard, **arrays)
    done = json.loads(run("tools/reteach_corpus.py", "--corpus", root).strip().splitlines()[-1])
    assert done["written"] and done["largest_coefficient_change"] > 0.1       # the lost motion came back
    with np.load(shard) as d:
        assert np.abs(d["coeffs"] - original).max() < 1e-3
        assert np.array_equal(d["audio"], arrays["audio"])                     # the audio is untouched
    assert json.loads((root / "manifest.json").read_text())["retaught"][-1]["shards"] == done["shards"]


def test_reteach_refuses_a_folder_without_a_corpus(tmp_path):
    out = subprocess.run([PY, "tools/reteach_corpus.py", "--corpus", tmp_path], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 1 and out.stderr.startswith("error: ") and "manifest.json not found: no corpus there" in out.stderr
    assert "Traceback" not in out.stderr


def test_closures_count_lips_closed_where_the_teacher_opens_them():
    sys.path.insert(0, str(ROOT / "tools"))
    import evaluate
    from core import lip_seal
    # teacher: two seals (frames 3-4 and 10); open (gap 5 mm) elsewhere but frames 0-1 (1 mm)
    labels = np.zeros(14)
    labels[[3, 4, 10]] = 1
    gap = np.full(14, 5.0)
    gap[[0, 1, 3, 4, 10]] = [1.0, 1.0, 0.0, 0.0, 0.0]
    model = gap.copy()
    model[[0, 6, 7]] = 0.2    # the network shuts at a nearly closed frame, and at two open ones
    assert evaluate.closures(gap, model) == {"open_frames": 9, "open_frames_closed": 2}
    phones = evaluate.frame_phones([[0.0, 0.2, "ˈa"], [0.2, 0.3, "t"]], 14, 10.0)
    assert phones[:4].tolist() == ["a", "a", "t", "sil"]
    assert evaluate.closures(gap, model, phones=phones)["by_phone"] == {"sil": [2, 8], "t": [0, 1]}
    full = 10.0                                     # logits sure of a seal, and sure of none
    assert lip_seal.seal_weights(np.array([full, -full])).tolist() == [1.0, 0.0]
    logits = np.full(14, -full)
    logits[5] = full          # one frame after the first seal: it counts (+-1 frame)
    logits[12] = full         # two frames after the second: it does not, and closes an open frame
    sealed = model.copy()
    sealed[[5, 12]] = 0.0     # what the seal does to the gap at those two frames
    r = evaluate.closures(gap, model, logits, labels, sealed)
    assert r == {"open_frames": 9, "open_frames_closed": 2, "seal_events": 2, "seal_events_sealed": 1,
                 "open_frames_closed_with_seal": 4}
