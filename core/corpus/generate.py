"""Corpus generation: the voice catalogue, the deterministic shard plan, and one shard's making.

Everything random is drawn from ``numpy.random.default_rng([seed, ...])`` keyed by what it is
for (voice catalogue, shard index), so a shard's content depends only on the seed and its
index: generation is reproducible whatever the number of workers and resumable shard by shard.

Splits (by voice AND by sentence, plus one held-out language):
  * every voice belongs to one split; in each (engine, language) group of voices one is a test
    voice, one a validation voice when the group has 5 or more, the rest train;
  * a voice of split S speaks only sentences whose id hashes into S (texts.sentence_split), so
    test voices and test sentences never occur in training;
  * Portuguese (``HELD_OUT_LANGUAGE``) is spoken only by its own voices, all in the split
    ``test_language``;
  * identities (face shapes) follow the voice: train voices use identities 0-8, validation
    voices 9, test voices 10-11.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..expression import EMOTIONS, Expression, Key
from . import articulation, augment, deformers, texts
from .dataset import FORMAT_VERSION, IdentityTable, summarize, write_shard
from .engines import VoiceSpec, get_engine

HELD_OUT_LANGUAGE = "pt"
ESPEAK_LANGUAGES = {  # espeak voice ("en" is British English) -> (text language, number of variants)
    "en-us": ("en", 9), "en": ("en", 4), "de": ("de", 7), "es": ("es", 5), "es-419": ("es", 3),
    "it": ("it", 6), "ru": ("ru", 6), "cs": ("cs", 5), "pl": ("pl", 6), "pt-br": ("pt", 5), "pt": ("pt", 3),
}
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt",
                   "klatt2", "klatt3", "klatt4", "Andy", "Annie", "Michael", "anika", "linda", "steph",
                   "edward", "grandpa", "max", "paul", "victor", "iven", "Alicia", "aunty")
FLITE_VOICES = (("slt", "train"), ("awb", "train"), ("kal16", "train"), ("rms", "test"))
FESTIVAL_VOICES = (("voice_kal_diphone", "en", "train"), ("voice_cmu_us_slt_arctic_hts", "en", "train"),
                   ("voice_ked_diphone", "en", "test"), ("voice_lp_diphone", "it", "train"),
                   ("voice_pc_diphone", "it", "test"))
# Kokoro's voices are Japanese speakers given espeak-ng's English IPA (accented English);
# "a+b" averages two voices' style vectors (a blend).
KOKORO_VOICES = (("jf_alpha", "train"), ("jf_gongitsune", "train"), ("jf_nezumi", "train"), ("jm_kumo", "train"),
                 ("jf_alpha+jm_kumo", "train"), ("jf_gongitsune+jm_kumo", "train"), ("jf_tebukuro", "test"))
# Real human voices (engines/recorded.py): folders of Debian's asterisk-core-sounds-*-wav
# (telephone prompts, 8 kHz). Allison speaks both English and Spanish; June and Carlo (the one
# male voice) are held out for testing, so tools/evaluate_real.py can use them as unseen voices.
RECORDINGS_ROOT = "/usr/share/asterisk/sounds"
RECORDED_VOICES = (("en_US_f_Allison", "en", "train"), ("es_MX_f_Allison", "es", "train"),
                   ("it_IT_f_Menardi", "it", "train"), ("ru_RU_f_IvrvoiceRU", "ru", "train"),
                   ("fr_CA_f_June", "fr", "test"), ("it_IT_m_Carlo", "it", "test"))
# More real voices, added as extra shards after the main ones (CorpusConfig.extra_real_hours):
# the spoken dialogues of the game Fish Fillets NG (Debian's fillets-ng-data-cs / -nl, 22 kHz
# studio recordings of voice actors). Per language one actress (the small fish, files
# "<level>-m-*") and one actor (the big fish, "<level>-v-*"): the first male training voices
# among the real ones. (name, language, glob under EXTRA_REAL_ROOT.)
EXTRA_REAL_ROOT = "/usr/share/games/fillets-ng/sound"
EXTRA_REAL_VOICES = (("fillets_cs_f", "cs", "**/cs/*-m-*.ogg"), ("fillets_cs_m", "cs", "**/cs/*-v-*.ogg"),
                     ("fillets_nl_f", "nl", "**/nl/*-m-*.ogg"), ("fillets_nl_m", "nl", "**/nl/*-v-*.ogg"))
SPLIT_SHARE = {"train": 0.80, "val": 0.05, "test": 0.08, "test_language": 0.07}
ENGINE_SHARE = {"espeak": 0.58, "flite": 0.12, "festival": 0.12, "kokoro": 0.06, "recorded": 0.12}
IDENTITIES_BY_SPLIT = {"train": list(range(9)), "val": [9], "test": [10, 11], "test_language": [10, 11]}


@dataclass
class CorpusConfig:
    out: str = "data/corpus"
    hours: float = 10.5
    seed: int = 0
    fps: float = 30.0
    shard_seconds: float = 180.0
    engines: tuple = ("espeak", "flite", "festival", "kokoro", "recorded")
    recordings_root: str = RECORDINGS_ROOT
    augment: bool = True
    max_utterance_seconds: float = 12.0
    extra_real_hours: float = 0.0          # hours of EXTRA_REAL_VOICES in extra shards (real_NNNNN)
    extra_real_root: str = EXTRA_REAL_ROOT


@dataclass
class VoiceEntry:
    spec: VoiceSpec
    split: str
    identity: int
    style: dict = field(default_factory=dict)
    extra: bool = False        # an EXTRA_REAL_VOICES voice: speaks in the extra shards only

    @property
    def voice_id(self):
        return self.spec.voice_id


def _h(*parts) -> int:
    return int(hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def voice_catalogue(cfg: CorpusConfig) -> list:
    rng = np.random.default_rng([cfg.seed, 1])
    voices = []

    def add(spec, split, extra=False):
        ids = IDENTITIES_BY_SPLIT[split]
        r = np.random.default_rng([cfg.seed, 2, _h(spec.voice_id)])
        # the voice's own habits: small, unobserved (the big, controllable variation is the style code)
        style = articulation.Style(jaw_strength=float(r.uniform(0.9, 1.1)), lip_strength=float(r.uniform(0.9, 1.1)),
                                   smooth_hz=float(r.uniform(10.0, 14.0)), round_bias=float(r.normal(0, 0.05)))
        voices.append(VoiceEntry(spec, split, ids[_h(cfg.seed, spec.voice_id) % len(ids)], asdict(style), extra))

    if "espeak" in cfg.engines:
        for ename, (lang, count) in ESPEAK_LANGUAGES.items():
            variants = rng.permutation(ESPEAK_VARIANTS)[:count]
            for j, var in enumerate(variants):
                spec = VoiceSpec("espeak", f"{ename}+{var}", lang, rate=round(float(rng.uniform(0.85, 1.15)), 3),
                                 pitch=int(rng.integers(30, 70)), extra=(int(rng.integers(30, 80)),))
                if lang == HELD_OUT_LANGUAGE:
                    split = "test_language"
                else:
                    split = "test" if j == 0 else ("val" if j == 1 and count >= 5 else "train")
                add(spec, split)
    if "flite" in cfg.engines:
        for name, split in FLITE_VOICES:
            add(VoiceSpec("flite", name, "en", rate=round(float(rng.uniform(0.9, 1.1)), 3)), split)
    if "festival" in cfg.engines:
        for name, lang, split in FESTIVAL_VOICES:
            add(VoiceSpec("festival", name, lang, rate=round(float(rng.uniform(0.9, 1.1)), 3)), split)
    if "kokoro" in cfg.engines:
        for name, split in KOKORO_VOICES:
            add(VoiceSpec("kokoro", name, "en", rate=round(float(rng.uniform(0.9, 1.1)), 3)), split)
    if "recorded" in cfg.engines:
        for name, lang, split in RECORDED_VOICES:
            if (Path(cfg.recordings_root) / name).is_dir():   # a voice whose package is missing is left out
                add(VoiceSpec("recorded", name, lang), split)
    if cfg.extra_real_hours > 0:       # appended last: the main shards' voices are unchanged
        from .engines.recorded import voice_files
        for name, lang, pattern in EXTRA_REAL_VOICES:
            if voice_files(cfg.extra_real_root, pattern):
                add(VoiceSpec("recorded", name, lang), "train", extra=True)
    return voices


def pick_voice(cfg: CorpusConfig, voices: list, k: int) -> VoiceEntry:
    """The voice of shard k: split by SPLIT_SHARE, then engine by ENGINE_SHARE, then uniform."""
    rng = np.random.default_rng([cfg.seed, 3, k])
    voices = [v for v in voices if not v.extra]
    splits = [s for s in SPLIT_SHARE if any(v.split == s for v in voices)]
    p = np.array([SPLIT_SHARE[s] for s in splits])
    split = splits[rng.choice(len(splits), p=p / p.sum())]
    engines = sorted({v.spec.engine for v in voices if v.split == split})
    p = np.array([ENGINE_SHARE[e] for e in engines])
    engine = engines[rng.choice(len(engines), p=p / p.sum())]
    pool = [v for v in voices if v.split == split and v.spec.engine == engine]
    return pool[rng.integers(len(pool))]


def sentence_pool(voice: VoiceEntry, cfg: CorpusConfig | None = None) -> tuple:
    if voice.spec.engine == "recorded":   # a recorded voice's "sentences" are its own files
        from .engines.recorded import voice_files
        cfg = cfg or CorpusConfig()
        if voice.extra:
            pattern = next(p for name, _, p in EXTRA_REAL_VOICES if name == voice.spec.name)
            return tuple(voice_files(cfg.extra_real_root, pattern))
        return tuple(voice_files(str(Path(cfg.recordings_root) / voice.spec.name)))
    if voice.split == "test_language":
        return texts.load_sentences(voice.spec.language)
    return texts.sentences_for(voice.spec.language, voice.split)


_CACHE = {}
NEUTRAL_SHARE = 0.45       # utterances spoken without emotion (their style code still varies)
SWITCH_SHARE = 0.2         # emotional utterances whose emotion changes half-way


def random_expression(rng: np.random.Generator, duration: float) -> Expression:
    """The emotion and speaking style of one utterance (core.expression codes)."""
    style = round(float(rng.uniform(-1.0, 1.0)), 3)
    if rng.random() < NEUTRAL_SHARE:
        return Expression((Key(0.0, "neutral", 1.0, style),))
    emotion = EMOTIONS[1 + int(rng.integers(len(EMOTIONS) - 1))]
    keys = [Key(0.0, emotion, round(float(rng.uniform(0.3, 1.0)), 3), style)]
    if rng.random() < SWITCH_SHARE and duration > 2.0:
        other = EMOTIONS[int(rng.integers(len(EMOTIONS)))]
        keys.append(Key(round(float(rng.uniform(0.3, 0.7) * duration), 3), other,
                        round(float(rng.uniform(0.3, 1.0)), 3), style))
    return Expression(tuple(keys))


def expression_meta(expr: Expression) -> list:
    return [[k.time, k.emotion, k.strength, k.style] for k in expr.keys]


def identity_table(cfg: CorpusConfig) -> IdentityTable:
    key = ("ids", cfg.seed)
    if key not in _CACHE:
        made = [deformers.identity_basis(n, v) for n, v in deformers.make_identities(cfg.seed)]
        _CACHE[key] = (IdentityTable([i.name for i in made], np.stack([i.neutral for i in made]),
                                     np.stack([i.basis for i in made]), np.stack([i.lmk_basis for i in made])), made)
    return _CACHE[key][0]


def _identity(cfg, index):
    identity_table(cfg)
    return _CACHE[("ids", cfg.seed)][1][index]


def prepared_identities(cfg: CorpusConfig):
    """The identities as built here, to hand to worker processes (saves rebuilding them)."""
    identity_table(cfg)
    return _CACHE[("ids", cfg.seed)]


def run_shard_isolated(cfg: CorpusConfig, voices: list, k: int, prepared=None, kind: str = "shard") -> tuple:
    """Entry point for a fresh worker process per shard: espeak-ng keeps internal state between
    calls (its audio depends slightly on what it said before), so each shard starts from a
    newly started library to make a shard depend only on (seed, k). ``kind``: "shard" (the
    main shards, make_shard) or "real" (the extra real-voice shards, make_extra_shard)."""
    if prepared is not None:
        _CACHE[("ids", cfg.seed)] = prepared
    return k, (make_extra_shard if kind == "real" else make_shard)(cfg, voices, k)


def make_shard(cfg: CorpusConfig, voices: list, k: int) -> dict:
    """Synthesize, augment and animate shard k; write it under cfg.out/shards. Returns a summary."""
    return _make_shard(cfg, pick_voice(cfg, voices, k), k, f"shard_{k:05d}", f"s{k:05d}", (4, 5))


def make_extra_shard(cfg: CorpusConfig, voices: list, j: int) -> dict:
    """Extra shard j (``real_NNNNN``): the EXTRA_REAL_VOICES in turn."""
    extras = [v for v in voices if v.extra]
    return _make_shard(cfg, extras[j % len(extras)], j, f"real_{j:05d}", f"r{j:05d}", (6, 7))


def _make_shard(cfg: CorpusConfig, voice: VoiceEntry, k: int, stem: str, utt_prefix: str, streams: tuple) -> dict:
    t0 = time.time()
    rng = np.random.default_rng([cfg.seed, streams[0], k])
    engine = get_engine(voice.spec.engine)
    pool = sentence_pool(voice, cfg)
    identity = _identity(cfg, voice.identity)
    names = identity_table(cfg).names
    items, seconds, attempts = [], 0.0, 0
    while seconds < cfg.shard_seconds and attempts < 2000:
        batch = [pool[i] for i in rng.integers(0, len(pool), size=16 if voice.spec.engine == "festival" else 4)]
        attempts += len(batch)
        t_tts = time.time()
        syns = engine.synthesize_many(voice.spec, batch)
        t_tts = (time.time() - t_tts) / len(batch)
        for text, syn in zip(batch, syns):
            if syn is None or syn.duration < 0.5 or syn.duration > cfg.max_utterance_seconds:
                continue
            if sum(1 for p in syn.phones if p.ipa) < 3:
                continue
            t1 = time.time()
            audio, phones, aug = augment.augment(syn.audio, syn.phones, rng, enabled=cfg.augment)
            duration = len(audio) / 16000
            t2 = time.time()
            style = articulation.Style.random(rng, articulation.Style(**voice.style))
            # its own generator: drawing the expression never changes which sentences and audio come next
            expr = random_expression(np.random.default_rng([cfg.seed, streams[1], k, len(items)]), duration)
            coeffs = articulation.articulate(phones, duration, cfg.fps, identity, style, expr)
            t3 = time.time()
            sid = texts.sentence_id(voice.spec.language, syn.text if voice.spec.engine == "recorded" else text)
            meta = {
                "utt_id": f"{utt_prefix}_{len(items):03d}", "voice_id": voice.voice_id, "engine": voice.spec.engine,
                "language": voice.spec.language, "sentence_id": sid, "text": syn.text if voice.spec.engine == "recorded" else text, "split": voice.split,
                "identity": voice.identity, "identity_name": names[voice.identity],
                "duration": round(duration, 5), "num_frames": int(len(coeffs)), "fps": cfg.fps,
                "phones": [[round(p.start, 5), round(p.end, 5), p.ipa] for p in phones],
                "style": {k2: round(v, 4) for k2, v in asdict(style).items()}, "augment": aug,
                "expression": expression_meta(expr),
                # compute seconds (not part of the data; for real-time factors)
                "timing": {"tts": round(t_tts, 4), "augment": round(t2 - t1, 4), "teacher": round(t3 - t2, 4),
                           "tts_audio_seconds": round(syn.duration, 4)},
            }
            items.append({"audio": audio, "coeffs": coeffs, "landmarks": identity.landmarks(coeffs), "meta": meta})
            seconds += duration
            if seconds >= cfg.shard_seconds:
                break
    shard_dir = Path(cfg.out) / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    summary = write_shard(shard_dir / stem, items)
    summary.update(voice=voice.voice_id, split=voice.split, compute_seconds=round(time.time() - t0, 3))
    return summary


def config_of(manifest: dict) -> CorpusConfig:
    """The CorpusConfig a corpus was made with (its manifest's ``config``)."""
    c = dict(manifest["config"])
    return CorpusConfig(**{**c, "engines": tuple(c.get("engines", CorpusConfig.engines))})


def teach_again(cfg: CorpusConfig, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """(T, K) coefficients and (T, 68, 3) landmarks of one stored utterance from today's
    teacher, as make_shard stores them: its phones (already
    stretched by the audio augmentation), style, emotion keys and identity are in its metadata,
    so a changed teacher re-teaches a corpus without synthesising anything again (stored values
    are rounded to 4-5 decimals: today's teacher reproduces the stored coefficients within ~1e-4)."""
    from .engines import Phone
    phones = [Phone(a, b, ipa) for a, b, ipa in meta["phones"]]
    expr = Expression.from_rows(meta["expression"]) if meta.get("expression") else None
    identity = _identity(cfg, meta["identity"])
    coeffs = articulation.articulate(phones, meta["duration"], meta["fps"], identity,
                                     articulation.Style(**meta["style"]), expr)
    return coeffs, identity.landmarks(coeffs)


def existing_shard(cfg: CorpusConfig, k: int, kind: str = "shard"):
    stem = Path(cfg.out) / "shards" / f"{kind}_{k:05d}"
    if not stem.with_suffix(".npz").exists() or not stem.with_suffix(".json").exists():
        return None
    metas = json.loads(stem.with_suffix(".json").read_text())
    return {"name": stem.name, "utterances": len(metas), "seconds": float(sum(m["duration"] for m in metas))}


def write_manifest(cfg: CorpusConfig, voices: list, shard_names: list, extra: dict | None = None) -> dict:
    out = Path(cfg.out)
    metas = []
    for name in shard_names:
        metas.extend(json.loads((out / "shards" / f"{name}.json").read_text()))
    used = {m["voice_id"] for m in metas}
    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": "synthetic",
        "fps": cfg.fps,
        "sample_rate": 16000,
        "coefficients": list(deformers.COEFFS),
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "held_out_language": HELD_OUT_LANGUAGE,
        "voices": [{"voice_id": v.voice_id, "engine": v.spec.engine, "name": v.spec.name, "language": v.spec.language,
                    "split": v.split, "identity": v.identity, "rate": v.spec.rate, "pitch": v.spec.pitch,
                    "used": v.voice_id in used} for v in voices],
        "identities": identity_table(cfg).names,
        "shards": list(shard_names),
        "stats": summarize(metas),
    }
    if extra:
        manifest.update(extra)
    tmp = out / "manifest.tmp.json"
    tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    tmp.replace(out / "manifest.json")
    return manifest


def report_markdown(root) -> str:
    """Statistics of a generated corpus as Markdown tables (for docs/corpus.md)."""
    root = Path(root)
    manifest = json.loads((root / "manifest.json").read_text())
    st = manifest["stats"]
    metas = []
    for name in manifest["shards"]:
        metas.extend(json.loads((root / "shards" / f"{name}.json").read_text()))
    lines = [f"- **{st['hours']:.2f} hours** of audio, {st['utterances']} utterances, {st['frames']} frames at "
             f"{manifest['fps']:g} fps, **{st['num_voices']} voices**, **{st['num_languages']} languages**, "
             f"{st['num_sentences']} distinct sentences, {len(manifest['identities'])} face identities, "
             f"{len(manifest['shards'])} shards.",
             f"- Held-out language (split `test_language` only): `{manifest['held_out_language']}`."]
    per_engine: dict = {}
    for name, v in st["by_voice"].items():
        per_engine[v["engine"]] = per_engine.get(v["engine"], 0) + 1
    blends = sum(1 for name in st["by_voice"] if "+" in name.split(":", 1)[1] and name.startswith("kokoro:"))
    names = {"espeak": "espeak-ng (language x variant, each with its own rate, pitch and range)", "kokoro": "Kokoro"}
    parts = [f"{n} {names.get(e, e)}" + (f" ({blends} of them blends)" if e == "kokoro" and blends else "")
             for e, n in sorted(per_engine.items())]
    lines.append(f"- Voices used: {', '.join(parts)}" + (f": {len(st['by_voice']) - blends} without the blends."
                                                         if blends else "."))
    gen = manifest.get("generation", {})
    if gen:
        lines.append(f"- Generation (last run): {gen['audio_seconds_this_run'] / 3600:.2f} h of audio in "
                     f"{gen['wall_seconds_this_run'] / 60:.1f} min wall on one worker process "
                     f"(real-time factor {gen['realtime_factor_this_run']:.3f} including augmentation, teacher and writing).")
    size = sum(p.stat().st_size for p in (root / "shards").glob("*")) + (root / "identities.npz").stat().st_size
    lines.append(f"- Size on disk: {size / 1e9:.2f} GB (16-bit audio, float32 landmarks and coefficients).")

    def table(title, key, extra=None):
        out = [f"\n### {title}\n", "| " + key + " | hours | utterances |" + (" " + extra[0] + " |" if extra else ""),
               "|---|---:|---:|" + ("---|" if extra else "")]
        for k, v in st[f"by_{key}"].items():
            out.append(f"| {k} | {v['hours']:.3f} | {v['utterances']} |" + (f" {extra[1](k)} |" if extra else ""))
        return out

    tts = {}
    for m in metas:
        t = tts.setdefault(m["engine"], [0.0, 0.0, 0.0, 0.0])
        t[0] += m["timing"]["tts"]
        t[1] += m["timing"]["tts_audio_seconds"]
        t[2] += m["timing"]["augment"] + m["timing"]["teacher"]
        t[3] += m["duration"]
    rtf = {e: f"{v[0] / max(v[1], 1e-9):.4f} (augment + teacher {v[2] / max(v[3], 1e-9):.4f})" for e, v in tts.items()}
    lines += table("By engine", "engine", ("TTS real-time factor (compute s / audio s, one core)", lambda k: rtf.get(k, "")))
    lines += table("By language", "language")
    lines += table("By split", "split")
    lines.append("\n### By voice\n")
    lines.append("| voice | engine | language | split | hours | utterances |")
    lines.append("|---|---|---|---|---:|---:|")
    for k, v in st["by_voice"].items():
        lines.append(f"| `{k}` | {v['engine']} | {v['language']} | {v['split']} | {v['hours']:.3f} | {v['utterances']} |")
    lines += table("By face identity", "identity")
    aug = {}
    for m in metas:
        for k in m["augment"]:
            if k != "rms_dbfs":
                aug[k.split("_")[0]] = aug.get(k.split("_")[0], 0) + 1
    lines.append("\n### Augmentation (utterances with each transform; all get a random level)\n")
    lines.append(", ".join(f"{k}: {v} ({100 * v / len(metas):.0f} %)" for k, v in sorted(aug.items())))
    return "\n".join(lines) + "\n"
