"""The corpus format (synthetic corpus and converted VOCASET alike) and its reader for training.

Reader API::

    from core.corpus.dataset import Corpus
    corpus = Corpus("data/corpus")
    corpus.manifest                      # dict: config, splits, per-voice/language/engine stats
    for utt in corpus.utterances("train"):          # "train" | "val" | "test" | "test_language"
        utt.audio          # (N,) float32, 16 kHz mono
        utt.fps            # frames per second of the motion (frame i shows time i / fps)
        utt.landmark_disp  # (T, 68, 3) float32 landmark displacements, metres, canonical frame
        utt.dense_disp()   # (T, 5023, 3) float32 dense displacements (rebuilt on demand)
        utt.coeffs         # (T, K) float32 deformer coefficients (dense = coeffs @ basis)
        utt.neutral        # (5023, 3) float32 neutral head of the utterance's identity
        utt.meta           # dict: utt_id, voice_id, engine, language, sentence_id, text, split,
                           #       identity, duration, phones [[start, end, ipa], ...], style, augment,
                           #       expression [[time, emotion, strength, style], ...]
        utt.codes          # (T, 5) emotion and speaking-style codes (core.expression), per frame
        utt.at_fps(25.0)   # the same utterance with motion linearly resampled to another rate

Layout on disk (``root``)::

    manifest.json            format version, fps, coefficient names, splits, statistics, shard list
    identities.npz           names (I,), neutral (I, 5023, 3), basis (I, K, 5023, 3),
                             lmk_basis (I, K, 68, 3) - float32, metres, canonical template frame
    shards/shard_NNNNN.npz   audio (int16, all utterances concatenated), audio_offsets (U+1,),
                             coeffs (F, K) float32, landmarks (F, 68, 3) float32,
                             frame_offsets (U+1,) for the shard's U utterances and F frames
    shards/shard_NNNNN.json  per-utterance metadata (the ``meta`` above), in shard order

Dense displacements are exactly ``coeffs[t] @ basis[identity]`` and landmark displacements are
exactly ``coeffs[t] @ lmk_basis[identity]`` (the 68-point embedding of the basis), so both
targets agree and resampling coefficients resamples both consistently. A converted VOCASET
corpus has no deformer coefficients: its shards store dense displacements per frame instead
(``dense`` array, (F, 5023, 3) float16 in metres) and ``coeffs`` is empty; the API is the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import articulation, deformers

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test", "test_language")


@dataclass
class Utterance:
    audio: np.ndarray
    fps: float
    coeffs: np.ndarray          # (T, K), or (T, 0) for dense-only corpora
    landmark_disp: np.ndarray   # (T, 68, 3)
    meta: dict
    _identity: "IdentityTable" = field(repr=False, default=None)
    _dense: np.ndarray = field(repr=False, default=None)

    @property
    def num_frames(self) -> int:
        return len(self.landmark_disp)

    @property
    def codes(self) -> np.ndarray:
        """(T, CODE_DIM) emotion and style codes (core.expression); zeros where none were recorded."""
        from ..expression import CODE_DIM, Expression
        keys = self.meta.get("expression")
        if not keys:
            return np.zeros((self.num_frames, CODE_DIM), np.float32)
        return Expression.from_rows(keys).codes(self.num_frames, self.fps)

    @property
    def neutral(self) -> np.ndarray:
        return self._identity.neutral[self.meta["identity"]]

    def dense_disp(self) -> np.ndarray:
        if self._dense is not None:
            return self._dense.astype(np.float32)
        basis = self._identity.basis[self.meta["identity"]]
        return np.tensordot(self.coeffs, basis, axes=(1, 0)).astype(np.float32)

    def at_fps(self, fps: float) -> "Utterance":
        n = max(1, int(np.ceil(self.meta["duration"] * fps - 1e-9)))
        t_new = np.arange(n) / fps
        t_old = np.arange(self.num_frames) / self.fps

        def interp(a):
            flat = a.reshape(len(a), -1)
            out = np.stack([np.interp(t_new, t_old, flat[:, k]) for k in range(flat.shape[1])], axis=1)
            return out.reshape((n,) + a.shape[1:]).astype(np.float32)

        if self._dense is not None:
            dense = interp(self._dense.astype(np.float32))
            from ..flame import load_topology
            coeffs = np.zeros((n, 0), np.float32) if self.coeffs.size == 0 else interp(self.coeffs)
            return Utterance(self.audio, fps, coeffs,
                             load_topology().landmarks(dense).astype(np.float32), dict(self.meta), self._identity, dense)
        coeffs = interp(self.coeffs)
        lmk = np.tensordot(coeffs, self._identity.lmk_basis[self.meta["identity"]], axes=(1, 0)).astype(np.float32)
        return Utterance(self.audio, fps, coeffs, lmk, dict(self.meta), self._identity)


@dataclass
class IdentityTable:
    names: list
    neutral: np.ndarray     # (I, 5023, 3)
    basis: np.ndarray       # (I, K, 5023, 3)
    lmk_basis: np.ndarray   # (I, K, 68, 3)

    def save(self, path) -> None:
        np.savez(path, names=np.array(self.names), neutral=self.neutral.astype(np.float32),
                 basis=self.basis.astype(np.float32), lmk_basis=self.lmk_basis.astype(np.float32))

    @staticmethod
    def load(path) -> "IdentityTable":
        with np.load(path) as d:
            return IdentityTable([str(n) for n in d["names"]], d["neutral"], d["basis"], d["lmk_basis"])


class Corpus:
    def __init__(self, root):
        self.root = Path(root)
        path = self.root / "manifest.json"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: make a corpus with tools/make_corpus.py "
                                    "or tools/convert_vocaset.py first")
        self.manifest = json.loads(path.read_text())
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: corpus format {self.manifest.get('format_version')}, expected {FORMAT_VERSION}")
        self.fps = float(self.manifest["fps"])
        self.sample_rate = int(self.manifest.get("sample_rate", 16000))
        self.identities = IdentityTable.load(self.root / "identities.npz")

    @property
    def shards(self) -> list:
        return list(self.manifest["shards"])

    def metadata(self, split: str | None = None) -> list:
        """Per-utterance metadata (no arrays loaded), optionally of one split."""
        out = []
        for s in self.shards:
            for m in json.loads((self.root / "shards" / f"{s}.json").read_text()):
                if split is None or m["split"] == split:
                    out.append(m)
        return out

    def utterances(self, split: str | None = None, shards=None):
        """Iterate ``Utterance`` objects of a split (None: all), shard by shard."""
        if split is not None and split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; one of {SPLITS}")
        for s in (shards or self.shards):
            metas = json.loads((self.root / "shards" / f"{s}.json").read_text())
            if split is not None and not any(m["split"] == split for m in metas):
                continue
            with np.load(self.root / "shards" / f"{s}.npz") as d:
                arrays = {k: d[k] for k in d.files}
            ao, fo = arrays["audio_offsets"], arrays["frame_offsets"]
            for i, m in enumerate(metas):
                if split is not None and m["split"] != split:
                    continue
                audio = arrays["audio"][ao[i]:ao[i + 1]].astype(np.float32) / 32767.0
                coeffs = arrays["coeffs"][fo[i]:fo[i + 1]]
                dense = arrays["dense"][fo[i]:fo[i + 1]] if "dense" in arrays else None
                if coeffs.size and coeffs.shape[1] == len(deformers.COEFFS):
                    # applied on reading, so corpora made before this teacher stage get it too
                    coeffs = articulation.rest_in_pauses(coeffs, audio, self.sample_rate, self.fps)
                if coeffs.size and coeffs.shape[1] == self.identities.lmk_basis.shape[1]:
                    # landmarks follow the identity table, so a rebuilt table (improved deformers)
                    # re-teaches the corpus without synthesising anything again
                    lmk = np.tensordot(coeffs, self.identities.lmk_basis[m["identity"]], axes=(1, 0))
                else:
                    lmk = arrays["landmarks"][fo[i]:fo[i + 1]]
                yield Utterance(audio, self.fps, coeffs, lmk.astype(np.float32), m, self.identities, dense)

    def __len__(self) -> int:
        return int(self.manifest["stats"]["utterances"])


def write_shard(path_stem: Path, items: list) -> dict:
    """Write one shard atomically. ``items``: dicts with audio (float32 16 kHz), coeffs (T, K),
    landmarks (T, 68, 3), optional dense (T, 5023, 3), meta. Returns a summary."""
    audio = [np.clip(np.round(it["audio"] * 32767), -32768, 32767).astype(np.int16) for it in items]
    arrays = {
        "audio": np.concatenate(audio) if audio else np.zeros(0, np.int16),
        "audio_offsets": np.r_[0, np.cumsum([len(a) for a in audio])].astype(np.int64),
        "coeffs": np.concatenate([np.asarray(it["coeffs"], np.float32) for it in items]),
        "landmarks": np.concatenate([np.asarray(it["landmarks"], np.float32) for it in items]),
        "frame_offsets": np.r_[0, np.cumsum([len(it["landmarks"]) for it in items])].astype(np.int64),
    }
    if items and "dense" in items[0]:
        arrays["dense"] = np.concatenate([np.asarray(it["dense"], np.float16) for it in items])
    path_stem = Path(path_stem)
    tmp = path_stem.with_name(path_stem.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    metas = [it["meta"] for it in items]
    tmp_json = path_stem.with_name(path_stem.name + ".tmp.json")
    tmp_json.write_text(json.dumps(metas, ensure_ascii=False))
    tmp_json.replace(path_stem.with_suffix(".json"))
    tmp.replace(path_stem.with_suffix(".npz"))   # the npz last: its presence marks a finished shard
    return {"name": path_stem.name, "utterances": len(items),
            "seconds": float(sum(m["duration"] for m in metas))}


def summarize(metas: list) -> dict:
    """Statistics for the manifest: hours and counts per split, language, engine and voice."""
    def group(key):
        out = {}
        for m in metas:
            g = out.setdefault(m[key], {"utterances": 0, "hours": 0.0})
            g["utterances"] += 1
            g["hours"] += m["duration"] / 3600
        return {k: {"utterances": v["utterances"], "hours": round(v["hours"], 4)} for k, v in sorted(out.items())}

    voices = group("voice_id")
    for m in metas:
        voices[m["voice_id"]].update(language=m["language"], engine=m["engine"], split=m["split"])
    return {
        "utterances": len(metas),
        "hours": round(sum(m["duration"] for m in metas) / 3600, 4),
        "frames": int(sum(m["num_frames"] for m in metas)),
        "by_split": group("split"),
        "by_language": group("language"),
        "by_engine": group("engine"),
        "by_voice": voices,
        "num_voices": len(voices),
        "num_languages": len({m["language"] for m in metas}),
        "num_sentences": len({m["sentence_id"] for m in metas}),
        "by_identity": group("identity_name"),
    }
