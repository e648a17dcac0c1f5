#!/usr/bin/env python3
"""Re-teach a corpus: today's articulation teacher animates every stored utterance again.

A teacher change (core/corpus/articulation.py) used to mean making the corpus again (about
30 min of speech synthesis and augmentation). Each utterance's phones, style, emotion keys and
identity are in its metadata, so this rewrites only the motion of every shard (deformer
coefficients and landmarks) in a minute or two. The audio is untouched, so the training
feature caches stay valid.

    python tools/reteach_corpus.py --corpus data/corpus            # rewrite the motion
    python tools/reteach_corpus.py --corpus data/corpus --check    # only report the change

Each shard is rewritten atomically (a stopped run leaves every shard whole, old or new; run it
again). The manifest records the re-teaching and the largest change it made.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.corpus import generate  # noqa: E402


def reteach_shard(cfg, root: Path, name: str, write: bool) -> tuple[float, float]:
    """Re-teach one shard; returns the largest change of a coefficient and of a landmark (mm)."""
    metas = json.loads((root / "shards" / f"{name}.json").read_text())
    with np.load(root / "shards" / f"{name}.npz") as d:
        arrays = {k: d[k] for k in d.files}
    if "dense" in arrays or arrays["coeffs"].size == 0:
        raise SystemExit(f"error: {name}: a converted corpus (dense motion, no teacher) cannot be re-taught")
    fo = arrays["frame_offsets"]
    coeffs, landmarks = [], []
    for i, meta in enumerate(metas):
        c, lmk = generate.teach_again(cfg, meta)
        if len(c) != fo[i + 1] - fo[i]:
            raise SystemExit(f"error: {name}/{meta['utt_id']}: the teacher gives {len(c)} frames, the shard holds "
                             f"{fo[i + 1] - fo[i]}; was the corpus made at another frame rate?")
        coeffs.append(c.astype(np.float32))
        landmarks.append(lmk.astype(np.float32))
    new_c, new_l = np.concatenate(coeffs), np.concatenate(landmarks)
    change = (float(np.abs(new_c - arrays["coeffs"]).max()), float(np.abs(new_l - arrays["landmarks"]).max()) * 1000)
    if write:
        arrays.update(coeffs=new_c, landmarks=new_l)
        tmp = root / "shards" / f"{name}.tmp.npz"
        np.savez(tmp, **arrays)
        tmp.replace(root / "shards" / f"{name}.npz")
    return change


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--check", action="store_true", help="write nothing; report how far today's teacher is "
                                                         "from the stored motion")
    args = ap.parse_args(argv)
    root = Path(args.corpus)
    path = root / "manifest.json"
    if not path.exists():
        raise SystemExit(f"error: {path} not found: no corpus there")
    manifest = json.loads(path.read_text())
    cfg = generate.config_of(manifest)
    worst_c = worst_l = 0.0
    for k, name in enumerate(manifest["shards"]):
        dc, dl = reteach_shard(cfg, root, name, write=not args.check)
        worst_c, worst_l = max(worst_c, dc), max(worst_l, dl)
        if (k + 1) % 20 == 0 or k + 1 == len(manifest["shards"]):
            print(f"  {k + 1}/{len(manifest['shards'])} shards; largest change so far: coefficient {worst_c:.2e}, "
                  f"landmark {worst_l:.3f} mm", flush=True)
    if not args.check:
        manifest.setdefault("retaught", []).append({"shards": len(manifest["shards"]),
                                                    "largest_coefficient_change": round(worst_c, 6),
                                                    "largest_landmark_change_mm": round(worst_l, 4)})
        tmp = path.with_name("manifest.tmp.json")
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        tmp.replace(path)
    print(json.dumps({"shards": len(manifest["shards"]), "written": not args.check,
                      "largest_coefficient_change": worst_c, "largest_landmark_change_mm": worst_l}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
