"""The trained weights that ship in weights/: present, intact, trained with evidence, and better
than no motion at all on real speech. Nothing here skips: without weights/ the suite fails."""
import json

import numpy as np
import pytest

from core import weights
from core.pipeline import Animator
from tests.conftest import ROOT, SAMPLE_AUDIO

NETWORKS = {"s2d": "s2d", "s2l_hama": "s2l", "s2l_mel": "s2l"}


def test_weights_folder_ships_every_network():
    assert weights.DEFAULT_DIR.is_dir(), f"{weights.DEFAULT_DIR} is missing: the add-on ships trained weights"
    manifest = weights.read_manifest(weights.DEFAULT_DIR)
    assert set(NETWORKS) <= set(manifest["networks"]), sorted(manifest["networks"])


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_shipped_network_loads_with_its_sha256_and_evidence(name):
    manifest = weights.read_manifest(weights.DEFAULT_DIR)
    entry = manifest["networks"][name]
    path = weights.DEFAULT_DIR / entry["file"]
    assert path.is_file(), path
    assert weights.file_sha256(path) == entry["sha256"]
    config, state, loaded = weights.load_network(weights.DEFAULT_DIR, name, NETWORKS[name])
    assert loaded == entry and state and all(np.isfinite(v).all() for v in state.values())
    # Trained, and the manifest says how: epochs and the best epoch's validation figures.
    assert entry["trained"] is True
    assert isinstance(entry["epochs"], int) and 1 <= entry["epochs"] <= entry["epochs_run"]
    v = entry["validation"]
    assert v["epoch"] == entry["epochs"] and np.isfinite([v["loss"], v["LE_mm"], v["DE_mm"]]).all()
    if "log" in entry:  # weights exported since the trainers write their log (weights/logs/)
        log = weights.read_training_log(weights.DEFAULT_DIR, entry)
        assert log["best_epoch"] == entry["epochs"] and len(log["epochs"]) == entry["epochs_run"]
        assert next(e for e in log["epochs"] if e["epoch"] == entry["epochs"]) == v
    # A trained network is not its initialisation: the output layer is not zero.
    out = state["output.weight"] if NETWORKS[name] == "s2l" else state["convs.4.linear.weight"]
    assert np.abs(out).max() > 1e-3


def test_corrupt_weights_are_refused(tmp_path):
    import shutil
    from core.errors import WeightsError
    for f in weights.DEFAULT_DIR.glob("*"):
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    blob = bytearray((tmp_path / "s2d.npz").read_bytes())
    blob[len(blob) // 2] ^= 0x01
    (tmp_path / "s2d.npz").write_bytes(bytes(blob))
    with pytest.raises(WeightsError, match="corrupt"):
        Animator.load(tmp_path, encoder="mel")


@pytest.fixture(scope="module")
def real_speech(tmp_path_factory):
    """tools/evaluate_real.py on the bundled real recording (LibriVox, 7 s), both front ends, and on
    a steady modem-like signal (24 carriers, 0.9-2.1 kHz) that it must skip as not speech."""
    import subprocess
    import sys
    from tests.addon_helpers import write_wav
    out = tmp_path_factory.mktemp("real")
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 6) / 16000
    modem = sum(np.sin(2 * np.pi * (f * t + 0.25 * rng.uniform(0, 1, len(t) // 400 + 1).repeat(400)[:len(t)]))
                for f in np.linspace(900, 2100, 24))
    write_wav(out / "modem.wav", 0.1 * modem / np.abs(modem).max(), 16000)
    done = subprocess.run([sys.executable, "tools/evaluate_real.py", str(SAMPLE_AUDIO), str(out / "modem.wav"),
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((out / "real_speech.json").read_text())
    for name, enc in report["encoders"].items():
        assert enc["skipped_no_speech"] == ["given/modem.wav"]
        if name == "teacher":                              # no phones: it rests by construction
            assert enc["non_speech"] == []
            continue
        (modem,) = enc["non_speech"]                       # measured apart: how far it opens the mouth
        # a signed gap: under 0 where the lips are pressed together (mel's seal presses them)
        assert modem["file"] == "modem.wav" and -2.0 < modem["gap_loud_p95_mm"] <= modem["gap_max_mm"]
    assert (out / "real_speech.md").is_file() and (out / "real_speech_hama.png").is_file()
    return report


def test_teacher_reference_on_real_speech(real_speech):
    """The teacher row animates hama's phones of the clip: it opens in speech and seals every p/b/m
    (it is what the networks are taught, so a network's miss can be told from the teacher's)."""
    res = real_speech["encoders"]["teacher"]
    assert "articulation teacher" in res["weights"]
    (clip,) = res["files"]
    assert clip["gap_speech_median_mm"] > 2 * max(clip["gap_rest_median_mm"], 0.5)
    assert clip["bilabials_found"] >= 5 and clip["bilabials_sealed"] == clip["bilabials_found"]


@pytest.mark.parametrize("encoder", ["hama", "mel"])
def test_quality_floor_on_real_speech(real_speech, encoder):
    """The shipped model beats the static face on a real clip.

    With no 4D capture of the speaker, the floor is what the static face (no motion) cannot do:
    open the mouth in speech by more than in the pauses and follow the loudness with the chin.
    """
    res = real_speech["encoders"][encoder]
    assert "trained: the bundled weights" in res["weights"]
    (clip,) = res["files"]
    assert clip["speech_frames"] > 100 and clip["rest_frames"] > 0
    assert clip["gap_speech_median_mm"] > 1.5                 # the static face: 0
    assert clip["gap_speech_median_mm"] > 2 * clip["gap_rest_median_mm"]
    assert clip["jaw_loudness_correlation"] > 0.3             # the static face: undefined (no motion)
    assert clip["bilabials_found"] >= 5
    if encoder == "hama":  # docs/eval/real_speech.md: hama closes the lips at p/b/m, mel far less often
        assert clip["bilabials_half_closed"] >= clip["bilabials_found"] // 2


def test_real_speech_report_keeps_each_bilabial(real_speech):
    """Every p/b/m is in the report with the aperture as shipped and with the networks alone, and
    the counts (sealed, sealed or opened by the rules) add up from them, per file and in the summary."""
    for enc in real_speech["encoders"].values():
        (clip,) = enc["files"]
        marks = clip["bilabials"]
        assert len(marks) == clip["bilabials_found"] and all(m["phone"][0] in "pbm" for m in marks)
        shipped = [m["aperture_mm"] <= 0.5 for m in marks]
        alone = [m["aperture_alone_mm"] <= 0.5 for m in marks]
        assert clip["bilabials_sealed"] == sum(shipped)
        assert clip["networks_alone"]["bilabials_sealed"] == sum(alone)
        assert clip["bilabials_sealed_by_rules"] == sum(s and not a for s, a in zip(shipped, alone))
        assert clip["bilabials_unsealed_by_rules"] == sum(a and not s for s, a in zip(shipped, alone))
        assert enc["summary"]["bilabials_unsealed_by_rules"] == clip["bilabials_unsealed_by_rules"]
        assert enc["summary_networks_alone"]["bilabials_sealed"] == sum(alone)


def test_real_speech_report_counts_lips_shut_where_the_teacher_opens(real_speech):
    """Each network's speech frames are compared with the teacher animating the same phones: the
    frames it holds open are counted, and those a network shuts; the teacher is not compared with
    itself."""
    assert "open_frames" not in real_speech["encoders"]["teacher"]["summary"]
    teacher_clip, = real_speech["encoders"]["teacher"]["files"]
    for name in ("hama", "mel"):
        enc = real_speech["encoders"][name]
        (clip,) = enc["files"]
        # the teacher opens in much of the clip's speech (its median gap there is several mm)
        assert teacher_clip["speech_frames"] // 3 < clip["open_frames"] <= clip["speech_frames"]
        assert 0 <= clip["open_frames_shut"] <= clip["open_frames"]
        assert enc["summary"]["open_frames_shut"] == clip["open_frames_shut"]
        assert enc["summary"]["open_frames_shut_share"] == clip["open_frames_shut"] / clip["open_frames"]
        assert enc["summary_networks_alone"]["open_frames"] == clip["open_frames"]
