"""VOCASET (official release, licence required, never downloaded here) -> the corpus format.

The release folder holds:
  data_verts.npy          (F, 5023, 3) float32 FLAME-topology vertices of every captured frame (60 fps)
  raw_audio_fixed.pkl     {subject: {sequence: {"audio": samples, "sample_rate": rate}}}
  templates.pkl           {subject: (5023, 3) neutral vertices}
  subj_seq_to_idx.pkl     {subject: {sequence: {frame_number: row in data_verts}}}
(the pickles were written by Python 2: they are read with ``encoding="latin1"``).

Each subject's neutral is brought into the canonical template frame by a similarity transform
fitted on the stable landmarks (brows, nose, eyes); the same rotation and scale are applied to
its displacements (frame - neutral). Missing frame numbers are filled by linear interpolation.
Audio is resampled to 16 kHz. Shards store dense displacements (float16, metres) and the
landmark displacements taken from them; ``coeffs`` is empty (no deformer basis).

Splits follow VOCA's subject split (8 train, 2 validation, 2 test subjects); unknown subjects go
to train. The sentence id is the sequence name.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np

from ..flame import STABLE_LANDMARKS, load_topology, validate_mesh
from .dataset import FORMAT_VERSION, IdentityTable, summarize, write_shard
from .engines import to_16k

VOCA_SPLIT = {
    "train": ("FaceTalk_170728_03272_TA", "FaceTalk_170904_00128_TA", "FaceTalk_170725_00137_TA",
              "FaceTalk_170915_00223_TA", "FaceTalk_170811_03274_TA", "FaceTalk_170913_03279_TA",
              "FaceTalk_170904_03276_TA", "FaceTalk_170912_03278_TA"),
    "val": ("FaceTalk_170811_03275_TA", "FaceTalk_170908_03277_TA"),
    "test": ("FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA"),
}
FILES = ("data_verts.npy", "raw_audio_fixed.pkl", "templates.pkl", "subj_seq_to_idx.pkl")
VOCA_FPS = 60.0


def _load_pickle(path):
    with open(path, "rb") as fh:
        return pickle.load(fh, encoding="latin1")


def similarity_to_template(vertices: np.ndarray):
    """(scale, R, t) with scale * R @ x + t mapping ``vertices`` onto the template, fitted on the
    stable landmarks (Umeyama's least-squares similarity)."""
    topo = load_topology()
    src = topo.landmarks(np.asarray(vertices, np.float64))[list(STABLE_LANDMARKS)]
    dst = topo.landmarks(topo.template.astype(np.float64))[list(STABLE_LANDMARKS)]
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, s, vt = np.linalg.svd(b.T @ a / len(a))
    d = np.ones(3)
    if np.linalg.det(u @ vt) < 0:
        d[-1] = -1
    r = u @ np.diag(d) @ vt
    scale = float((s * d).sum() / (a ** 2).sum() * len(a))
    return scale, r, md - scale * r @ ms


def split_of(subject: str) -> str:
    for split, subjects in VOCA_SPLIT.items():
        if subject in subjects:
            return split
    return "train"


def convert(src, out, shard_utterances: int = 20, log=print) -> dict:
    src, out = Path(src), Path(out)
    missing = [f for f in FILES if not (src / f).exists()]
    if missing:
        raise FileNotFoundError(f"{src} is not a VOCASET release folder: missing {', '.join(missing)}")
    verts = np.load(src / "data_verts.npy", mmap_mode="r")
    audio = _load_pickle(src / "raw_audio_fixed.pkl")
    templates = _load_pickle(src / "templates.pkl")
    index = _load_pickle(src / "subj_seq_to_idx.pkl")
    topo = load_topology()
    subjects = sorted(index)
    neutral, transforms = [], {}
    for subj in subjects:
        tpl = validate_mesh(np.asarray(templates[subj]), what=f"VOCASET template {subj}")
        scale, r, t = similarity_to_template(tpl)
        transforms[subj] = (scale, r)
        neutral.append((scale * tpl @ r.T + t).astype(np.float32))
    table = IdentityTable(subjects, np.stack(neutral), np.zeros((len(subjects), 0, 5023, 3), np.float32),
                          np.zeros((len(subjects), 0, 68, 3), np.float32))
    (out / "shards").mkdir(parents=True, exist_ok=True)
    table.save(out / "identities.npz")
    items, shards, metas = [], [], []

    def flush():
        if items:
            name = f"shard_{len(shards):05d}"
            write_shard(out / "shards" / name, items)
            shards.append(name)
            metas.extend(it["meta"] for it in items)
            items.clear()

    for si, subj in enumerate(subjects):
        scale, r = transforms[subj]
        tpl = np.asarray(templates[subj], np.float64)
        for seq in sorted(index[subj]):
            frames = index[subj][seq]
            if seq not in audio.get(subj, {}) or not frames:
                log(f"skipping {subj}/{seq}: no audio or no frames")
                continue
            numbers = np.array(sorted(frames))
            rows = np.array([frames[n] for n in numbers])
            full = np.arange(numbers[0], numbers[-1] + 1)
            v = np.asarray(verts[rows], np.float64)
            if len(full) != len(numbers):   # fill dropped capture frames
                flat = v.reshape(len(v), -1)
                v = np.stack([np.interp(full, numbers, flat[:, k]) for k in range(flat.shape[1])], 1).reshape(-1, 5023, 3)
            disp = scale * (v - tpl[None]) @ r.T
            a = audio[subj][seq]
            samples = np.asarray(a["audio"], np.float32)
            if samples.ndim > 1:
                samples = samples.mean(axis=1)
            if np.abs(samples).max() > 1.5:    # integer PCM
                samples = samples / 32768.0
            wav = to_16k(samples, int(a["sample_rate"]))
            duration = len(wav) / 16000
            n = max(1, int(np.ceil(duration * VOCA_FPS - 1e-9)))
            disp = disp[:n]
            if len(disp) < n:                  # hold the last pose if the capture is shorter
                disp = np.concatenate([disp, np.repeat(disp[-1:], n - len(disp), 0)])
            dense = disp.astype(np.float16)
            meta = {"utt_id": f"{subj}/{seq}", "voice_id": f"vocaset:{subj}", "engine": "vocaset",
                    "language": "en", "sentence_id": f"vocaset:{seq}", "text": "", "split": split_of(subj),
                    "identity": si, "identity_name": subj, "duration": round(duration, 5), "num_frames": n,
                    "fps": VOCA_FPS, "phones": [], "style": {}, "augment": {}}
            items.append({"audio": wav, "coeffs": np.zeros((n, 0), np.float32), "dense": dense,
                          "landmarks": topo.landmarks(dense.astype(np.float32)), "meta": meta})
            if len(items) >= shard_utterances:
                flush()
    flush()
    manifest = {"format_version": FORMAT_VERSION, "kind": "vocaset", "fps": VOCA_FPS, "sample_rate": 16000,
                "coefficients": [], "source": str(src), "identities": subjects, "shards": shards,
                "stats": summarize(metas)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    log(f"converted {len(metas)} sequences of {len(subjects)} subjects ({manifest['stats']['hours']:.3f} h) -> {out}")
    return manifest
