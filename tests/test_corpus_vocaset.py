"""VOCASET reader on a tiny fixture written in the official release layout."""

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.corpus.dataset import Corpus
from core.corpus.vocaset import convert
from core.flame import load_topology

ROOT = Path(__file__).resolve().parent.parent
TEST_SUBJECT, TRAIN_SUBJECT = "FaceTalk_170809_00138_TA", "FaceTalk_170728_03272_TA"


def _rot_y(deg):
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    """Two subjects, two sentences each, 60 fps, 22 kHz int16 audio. The train subject's head is
    scaled (x1.2), rotated (10 degrees about Y) and shifted; one capture frame is dropped."""
    root = tmp_path_factory.mktemp("vocaset")
    topo = load_topology()
    tpl = topo.template.astype(np.float64)
    rng = np.random.default_rng(0)
    poses = {TEST_SUBJECT: (1.0, np.eye(3), np.zeros(3)),
             TRAIN_SUBJECT: (1.2, _rot_y(10), np.array([0.01, -0.02, 0.3]))}
    lips = topo.regions["lips"]
    verts, index, audio, templates, truth = [], {}, {}, {}, {}
    for subj, (s, r, t) in poses.items():
        templates[subj] = (s * tpl @ r.T + t).astype(np.float32)
        index[subj], audio[subj] = {}, {}
        for seq, seconds in (("sentence01", 0.5), ("sentence02", 0.3)):
            n = int(np.ceil(seconds * 60))
            amp = 0.004 * np.sin(np.linspace(0, 3, n))          # lips move down, canonical frame
            disp = np.zeros((n, 5023, 3))
            disp[:, lips, 1] = -amp[:, None]
            truth[(subj, seq)] = disp
            frames = {}
            for f in range(n):
                if subj == TRAIN_SUBJECT and seq == "sentence01" and f == 7:
                    continue                                      # dropped capture frame
                frames[f + 1] = len(verts)
                verts.append(s * (tpl + disp[f]) @ r.T + t)
            index[subj][seq] = frames
            audio[subj][seq] = {"audio": (rng.normal(0, 3000, int(seconds * 22000))).astype(np.int16),
                                "sample_rate": 22000}
    np.save(root / "data_verts.npy", np.asarray(verts, np.float32))
    for name, obj in (("raw_audio_fixed.pkl", audio), ("templates.pkl", templates), ("subj_seq_to_idx.pkl", index)):
        with open(root / name, "wb") as fh:
            pickle.dump(obj, fh, protocol=2)
    return root, truth


def test_convert_and_read(fixture, tmp_path):
    src, truth = fixture
    out = tmp_path / "voca"
    manifest = convert(src, out, log=lambda m: None)
    assert manifest["stats"]["utterances"] == 4
    corpus = Corpus(out)
    assert corpus.fps == 60.0
    topo = load_topology()
    seen = set()
    for utt in corpus.utterances():
        subj, seq = utt.meta["utt_id"].split("/")
        seen.add((subj, seq))
        assert utt.meta["split"] == ("test" if subj == TEST_SUBJECT else "train")
        assert abs(len(utt.audio) / 16000 - utt.meta["duration"]) < 1e-3
        dense = utt.dense_disp()
        want = truth[(subj, seq)][: len(dense)]
        # canonical frame (scale, rotation, shift undone), float16 storage: within 0.01 mm;
        # the dropped frame is interpolated from its neighbours (sine curvature: ~0.02 mm)
        np.testing.assert_allclose(dense, want, atol=5e-5)
        np.testing.assert_allclose(np.delete(dense, 7, axis=0), np.delete(want, 7, axis=0), atol=1e-5)
        np.testing.assert_allclose(utt.landmark_disp, topo.landmarks(dense), atol=1e-6)
        np.testing.assert_allclose(utt.neutral, topo.template, atol=1e-5)
        r = utt.at_fps(30.0)
        assert r.num_frames == int(np.ceil(utt.meta["duration"] * 30 - 1e-9)) and r.coeffs.shape == (r.num_frames, 0)
        np.testing.assert_allclose(r.dense_disp()[1], dense[2], atol=1e-6)      # frame 1 at 30 fps = frame 2 at 60
    assert len(seen) == 4
    assert {m["split"] for m in corpus.metadata("test")} == {"test"}


def test_missing_files_are_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_verts.npy"):
        convert(tmp_path, tmp_path / "out")


def test_cli(fixture, tmp_path):
    src, _ = fixture
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "convert_vocaset.py"), str(src), str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    bad = subprocess.run([sys.executable, str(ROOT / "tools" / "convert_vocaset.py"), str(tmp_path), str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "missing" in bad.stderr
