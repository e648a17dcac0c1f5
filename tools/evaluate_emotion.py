"""Is each emotion recognisable from the mesh alone, and does neutral stay as it was?

    python tools/evaluate_emotion.py --corpus data/corpus --encoder hama --out docs/eval

1. The shipped S2L speaks every held-out utterance once per emotion (neutral, happy, sad, angry,
   surprised at strength 1, default style). A linear classifier (ridge regression on one-hot
   targets, numpy) is fitted on the per-frame landmark offsets of the validation voices and
   scored on the test voices (unseen in training and in the classifier's fit): accuracy and the
   confusion matrix.
2. Neutral code vs no code at all: the lip figures of neutral speech (inner-lip gap median and
   95th percentile over speech frames) with the neutral code given explicitly.
3. A contact sheet per emotion from a real recording (the bundled LibriVox sample): mouth and
   eyes close up at the same frames, rendered with the numpy rasteriser.
Writes emotion.json, emotion.md and emotion_sheet.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import audio as audio_io, expression, flame, lip_aperture  # noqa: E402
from core.pipeline import Animator  # noqa: E402

SAMPLE = ROOT / "core" / "assets" / "audio" / "sample_speech.wav"


def predictions(corpus, split: str, animator: Animator, max_utts: int) -> tuple[np.ndarray, np.ndarray, list]:
    """Per-frame landmark offsets (N, 204) and labels (N,) for every emotion on one split,
    sampled across the split's voices."""
    metas = corpus.metadata(split)
    by_voice: dict = {}
    for m in metas:
        by_voice.setdefault(m["voice_id"], []).append(m["utt_id"])
    keep, i = set(), 0
    while len(keep) < min(max_utts, len(metas)):       # round-robin over voices
        for ids in by_voice.values():
            if i < len(ids) and len(keep) < max_utts:
                keep.add(ids[i])
        i += 1
    x, y, voices = [], [], []
    for utt in corpus.utterances(split):
        if utt.meta["utt_id"] not in keep:
            continue
        feats = animator.encoder.features(audio_io.normalise_loudness(utt.audio))
        for label, emotion in enumerate(expression.EMOTIONS):
            code = expression.Expression.constant(emotion, 1.0).codes(utt.num_frames, utt.fps)
            lmk = animator.s2l(feats, utt.num_frames, utt.fps, 0.0, code)
            x.append(lmk.reshape(len(lmk), -1))
            y.append(np.full(len(lmk), label))
        voices.append(utt.meta["voice_id"])
    return np.concatenate(x), np.concatenate(y), sorted(set(voices))


def fit_linear(x: np.ndarray, y: np.ndarray, ridge: float = 1e-2):
    mean, std = x.mean(0), x.std(0) + 1e-9
    z = np.c_[(x - mean) / std, np.ones(len(x))]
    t = np.eye(len(expression.EMOTIONS))[y]
    w = np.linalg.solve(z.T @ z + ridge * len(z) * np.eye(z.shape[1]), z.T @ t)
    return lambda q: np.argmax(np.c_[(q - mean) / std, np.ones(len(q))] @ w, axis=1)


def lip_figures(animator: Animator, samples: np.ndarray, expr) -> dict:
    topo = flame.load_topology()
    anim = animator.animate((samples, 16000), topo.template, 30.0, expression=expr)
    gap = lip_aperture.vertical_gap(flame.landmarks(anim.displacements.astype(np.float64))) * 1000
    speaking = gap > 0.5
    return {"gap_median_mm": float(np.median(gap[speaking])), "gap_p95_mm": float(np.percentile(gap[speaking], 95))}


def contact_sheet(animator: Animator, samples: np.ndarray, path: Path) -> None:
    from core.corpus import raster
    topo = flame.load_topology()
    v0 = topo.template.astype(np.float64)
    lmk0 = topo.landmarks(v0)
    mouth_c, eyes_c = lmk0[60:68].mean(0) - [0, 0.006, 0], lmk0[36:48].mean(0) + [0, 0.008, 0]
    neutral = animator.animate((samples, 16000), v0, 30.0, expression="neutral")
    gap = lip_aperture.vertical_gap(flame.landmarks(neutral.displacements.astype(np.float64)))
    frames = [int(np.argmax(gap)), int(np.argmin(np.abs(gap - np.median(gap[gap > 0.001])))), 5]
    rows = []
    for emotion in expression.EMOTIONS:
        anim = neutral if emotion == "neutral" else animator.animate((samples, 16000), v0, 30.0, expression=emotion)
        tiles = []
        for f in frames:
            verts = anim.vertices[f]
            tiles.append(raster.label(raster.render(verts, topo.faces, "front", 180, mouth_c, 0.075),
                                      f"{emotion} mouth f{f}"))
        tiles.append(raster.label(raster.render(anim.vertices[frames[0]], topo.faces, "front", 180, eyes_c, 0.13),
                                  f"{emotion} eyes"))
        rows.append(np.concatenate(tiles, axis=1))
    raster.write_png(path, np.concatenate(rows, axis=0))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--encoder", default="hama")
    ap.add_argument("--max-utterances", type=int, default=60, help="per split, spread over its voices")
    ap.add_argument("--out", default=str(ROOT / "docs" / "eval"))
    args = ap.parse_args(argv)
    from core.corpus.dataset import Corpus
    corpus = Corpus(args.corpus)
    animator = Animator.load(args.weights, encoder=args.encoder)
    if not animator.condition_dim:
        raise SystemExit("these S2L weights take no emotion code: nothing to evaluate")
    x_fit, y_fit, fit_voices = predictions(corpus, "val", animator, args.max_utterances)
    x_test, y_test, test_voices = predictions(corpus, "test", animator, args.max_utterances)
    classify = fit_linear(x_fit, y_fit)
    guess = classify(x_test)
    k = len(expression.EMOTIONS)
    confusion = np.zeros((k, k), int)
    np.add.at(confusion, (y_test, guess), 1)
    accuracy = float((guess == y_test).mean())
    samples = audio_io.normalise_loudness(audio_io.load_audio(SAMPLE))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"encoder": args.encoder, "weights": animator.describe(), "accuracy": accuracy,
              "target_accuracy": 0.8, "emotions": list(expression.EMOTIONS),
              "confusion_rows_true_cols_predicted": confusion.tolist(),
              "fit_voices": fit_voices, "test_voices": test_voices, "test_frames": int(len(y_test)),
              "sample_lips": {e: lip_figures(animator, samples, e) for e in expression.EMOTIONS}}
    contact_sheet(animator, samples, out / "emotion_sheet.png")
    (out / "emotion.json").write_text(json.dumps(report, indent=1) + "\n")
    md = ["# Emotion control", "", f"Written by `tools/evaluate_emotion.py`; weights: {animator.describe()}.", "",
          f"Per-frame landmark offsets of {len(test_voices)} unseen test voices, classified by a linear model "
          f"fitted on {len(fit_voices)} validation voices: **{100 * accuracy:.1f} %** correct over "
          f"{len(y_test)} frames (target >= 80 %).", "",
          "| true \\ predicted | " + " | ".join(expression.EMOTIONS) + " |", "|---" * (k + 1) + "|"]
    for i, e in enumerate(expression.EMOTIONS):
        md.append(f"| {e} | " + " | ".join(str(c) for c in confusion[i]) + " |")
    md += ["", "Inner-lip vertical gap on the bundled LibriVox sample, per emotion (frames with the lips apart):", "",
           "| emotion | median (mm) | 95th percentile (mm) |", "|---|---|---|"]
    for e, f in report["sample_lips"].items():
        md.append(f"| {e} | {f['gap_median_mm']:.2f} | {f['gap_p95_mm']:.2f} |")
    md += ["", "![mouth and eyes per emotion](emotion_sheet.png)", ""]
    (out / "emotion.md").write_text("\n".join(md) + "\n")
    print(f"emotion accuracy on unseen voices: {100 * accuracy:.1f} % -> {out / 'emotion.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
