"""Corpus generation (tiny), dataset round-trip, resumability, reproducibility, split
disjointness, and the voice catalogue."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.corpus import generate, texts
from core.corpus.dataset import Corpus
from core.flame import load_topology

ROOT = Path(__file__).resolve().parent.parent


def _make(out, hours=0.012, seed=3, shard_seconds=10.0):
    cfg = generate.CorpusConfig(out=str(out), hours=hours, seed=seed, shard_seconds=shard_seconds,
                                engines=("espeak",))
    sys.path.insert(0, str(ROOT / "tools"))
    import make_corpus
    return make_corpus.run(cfg, workers=1, log=lambda m: None)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    _make(out)
    return out


def test_round_trip(tiny):
    corpus = Corpus(tiny)
    topo = load_topology()
    st = corpus.manifest["stats"]
    assert st["hours"] >= 0.012 and st["utterances"] == len(corpus) > 0
    n = 0
    for utt in corpus.utterances():
        m = utt.meta
        assert utt.audio.dtype == np.float32 and abs(len(utt.audio) / 16000 - m["duration"]) < 1e-3
        assert utt.num_frames == int(np.ceil(m["duration"] * corpus.fps - 1e-9)) == m["num_frames"]
        dense = utt.dense_disp()
        assert dense.shape == (utt.num_frames, 5023, 3)
        np.testing.assert_allclose(topo.landmarks(dense), utt.landmark_disp, atol=1e-6)
        # speech never moves the upper face; only an emotion does (core.expression)
        emotional = utt.codes[:, :4].max(axis=1) > 0
        assert np.abs(dense[~emotional][:, topo.regions["upper_face"]]).max(initial=0) == 0
        assert utt.neutral.shape == (5023, 3)
        assert m["phones"][0][0] == 0 and abs(m["phones"][-1][1] - m["duration"]) < 1e-4
        r = utt.at_fps(24.0)
        assert r.num_frames == int(np.ceil(m["duration"] * 24 - 1e-9))
        np.testing.assert_allclose(r.landmark_disp[0], utt.landmark_disp[0], atol=1e-6)
        n += 1
    assert n == len(corpus)


def test_resume_and_reproducible(tiny, tmp_path):
    shards = sorted((tiny / "shards").glob("*.npz"))
    mtimes = [p.stat().st_mtime_ns for p in shards]
    _make(tiny)                                   # rerun: nothing is remade
    assert [p.stat().st_mtime_ns for p in shards] == mtimes
    _make(tmp_path)                               # same seed elsewhere: identical content
    for p in shards:
        a, b = np.load(p), np.load(tmp_path / "shards" / p.name)
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k])
    # a partial corpus (last shard missing) resumes to the same manifest
    (tmp_path / "shards" / shards[-1].name).unlink()
    _make(tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text())["stats"] == \
        json.loads((tiny / "manifest.json").read_text())["stats"]


def test_split_disjointness(tiny):
    cfg = generate.CorpusConfig(seed=3)
    voices = generate.voice_catalogue(cfg)
    by_split = {}
    for v in voices:
        by_split.setdefault(v.split, set()).add(v.voice_id)
    assert not by_split["train"] & by_split["test"] and not by_split["train"] & by_split["val"]
    assert all(v.split == "test_language" for v in voices if v.spec.language == generate.HELD_OUT_LANGUAGE)
    assert all(v.spec.language == generate.HELD_OUT_LANGUAGE for v in voices if v.split == "test_language")
    # sentences: pools are disjoint per language
    for lang in ("en", "de"):
        tr, te = set(texts.sentences_for(lang, "train")), set(texts.sentences_for(lang, "test"))
        assert tr and te and not tr & te
    # and in the generated corpus
    metas = Corpus(tiny).metadata()
    splits = {}
    for m in metas:
        splits.setdefault(m["split"], {"voices": set(), "sentences": set(), "languages": set()})
        splits[m["split"]]["voices"].add(m["voice_id"])
        splits[m["split"]]["sentences"].add(m["sentence_id"])
        splits[m["split"]]["languages"].add(m["language"])
        assert texts.sentence_split(m["sentence_id"]) == m["split"] or m["split"] == "test_language"
    for a in splits:
        for b in splits:
            if a < b:
                assert not splits[a]["voices"] & splits[b]["voices"]
                assert not splits[a]["sentences"] & splits[b]["sentences"]
    for s, d in splits.items():
        assert (generate.HELD_OUT_LANGUAGE in d["languages"]) == (s == "test_language")


def test_catalogue_size_and_espeak_voices_exist():
    cfg = generate.CorpusConfig(engines=("espeak", "flite", "festival", "kokoro"))
    voices = generate.voice_catalogue(cfg)
    # docs/corpus.md and the model card report a corpus of 64 TTS voices in 8 languages made from
    # this catalogue: it must hold at least that many, with test voices in every language but
    # the held-out one, which only test_language speaks.
    assert len(voices) >= 64, len(voices)
    languages = {v.spec.language for v in voices}
    assert len(languages) == 8, languages
    # the recorded human voices (when their Debian packages are installed) come on top, with the
    # two held-out voices in the test split only
    recorded = [v for v in generate.voice_catalogue(generate.CorpusConfig()) if v.spec.engine == "recorded"]
    assert {v.split for v in recorded} <= {"train", "test"}
    assert all(v.split == "test" for v in recorded if v.spec.name in ("fr_CA_f_June", "it_IT_m_Carlo"))
    for lang in languages - {generate.HELD_OUT_LANGUAGE}:
        assert {v.split for v in voices if v.spec.language == lang} >= {"train", "test"}, lang
    from core.corpus.engines.espeak import voice_exists
    for v in voices:
        if v.spec.engine == "espeak":
            assert voice_exists(v.spec.name), v.spec.name


def test_extra_real_voices_come_in_their_own_shards(tiny, tmp_path):
    """--extra-real-hours appends real_NNNNN shards of the extra real voices, labelled from hama's
    phones; the main shards stay byte-identical (the extra voices never join their draw)."""
    import soundfile as sf
    from core.audio import load_audio
    speech = load_audio(ROOT / "core" / "assets" / "audio" / "sample_speech.wav")
    root = tmp_path / "sound"                     # laid out like fillets-ng's <level>/<lang>/<level>-m-*.ogg
    for i in range(3):
        (root / f"lvl{i}" / "cs").mkdir(parents=True)
        sf.write(root / f"lvl{i}" / "cs" / f"lvl{i}-m-line.ogg", speech[i * 40000:(i + 1) * 40000], 16000,
                 format="OGG", subtype="VORBIS")
    cfg = generate.CorpusConfig(out=str(tmp_path / "c"), hours=0.012, seed=3, shard_seconds=10.0, engines=("espeak",),
                                extra_real_hours=0.004, extra_real_root=str(root))
    sys.path.insert(0, str(ROOT / "tools"))
    import make_corpus
    manifest = make_corpus.run(cfg, workers=1, log=lambda m: None)
    main = json.loads((tiny / "manifest.json").read_text())["shards"]
    assert manifest["shards"][:len(main)] == main and manifest["shards"][len(main):] == ["real_00000", "real_00001"]
    for name in main:
        a, b = np.load(tiny / "shards" / f"{name}.npz"), np.load(tmp_path / "c" / "shards" / f"{name}.npz")
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k])
    extra = [v for v in manifest["voices"] if v["name"].startswith("fillets_")]
    assert [v["name"] for v in extra] == ["fillets_cs_f"] and extra[0]["split"] == "train"   # only voices with files
    utts = list(Corpus(tmp_path / "c").utterances(shards=["real_00000"]))
    assert utts and all(u.meta["voice_id"] == "recorded:fillets_cs_f" and u.meta["utt_id"].startswith("r00000_")
                        for u in utts)
    assert any(ipa for u in utts for _, _, ipa in u.meta["phones"])    # the recogniser's phones drive the teacher
    assert max(float(np.abs(u.landmark_disp).max()) for u in utts) > 1e-3
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "make_corpus.py"), "--out", str(tmp_path / "d"),
                        "--hours", "0.001", "--shard-seconds", "5", "--engines", "espeak", "--extra-real-hours", "0.1",
                        "--extra-real-root", str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "error: --extra-real-hours: no recordings" in r.stderr


def test_make_corpus_cli_tiny(tmp_path):
    out = tmp_path / "c"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "make_corpus.py"), "--out", str(out), "--hours", "0.003",
                        "--shard-seconds", "5", "--engines", "espeak", "--seed", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "done:" in r.stdout and "%" in r.stdout
    assert Corpus(out).manifest["stats"]["utterances"] > 0


def test_report_markdown_figures_come_from_the_manifest(tiny):
    """docs/corpus.md is this report: its counts are the manifest's, voices counted per engine."""
    corpus = Corpus(tiny)
    st = corpus.manifest["stats"]
    md = generate.report_markdown(tiny)
    assert f"{st['utterances']} utterances" in md and f"**{st['num_voices']} voices**" in md
    assert f"- Voices used: {len(st['by_voice'])} espeak-ng" in md  # the tiny corpus: espeak only
    for voice, v in st["by_voice"].items():
        assert f"| `{voice}` | {v['engine']} | {v['language']} | {v['split']} | {v['hours']:.3f} |" in md
