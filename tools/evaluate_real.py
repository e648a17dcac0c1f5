"""Run the shipped model on real recordings and measure what can be measured without 4D capture.

The corpus is synthetic, so this checks behaviour on real human speech:
  * lips in silence: the inner-lip gap change (landmarks 62-66) during silent frames vs speech;
  * bilabials: at every p/b/m that hama's recogniser finds in the recording, the smallest lip
    gap change within the phone (+-1 frame) compared with the median over speech frames;
  * jaw and loudness: correlation of the chin's drop (landmark 8) with the loudness envelope.
Recordings default to the bundled LibriVox sample and Debian's pocketsphinx-testdata
(public-domain LibriVox clips and CMU's read speech) when installed.

    python tools/evaluate_real.py --out docs/eval       # writes real_speech.md / .json / .png
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import audio as audio_io, flame  # noqa: E402
from core.pipeline import Animator  # noqa: E402

DEFAULT_GLOBS = [str(ROOT / "core" / "assets" / "audio" / "*.wav"),
                 "/usr/share/pocketsphinx/test/data/librivox/*.wav",
                 "/usr/share/pocketsphinx/test/data/cards/*.wav"]
BILABIALS = {"p", "b", "m", "pʰ", "m̩"}


def frame_loudness_db(samples16k: np.ndarray, fps: float, n: int) -> np.ndarray:
    """RMS in dB of the 40 ms of audio centred on each animation frame."""
    half = 320
    out = np.empty(n)
    for i in range(n):
        c = int(i / fps * 16000)
        seg = samples16k[max(0, c - half):c + half]
        out[i] = 10 * np.log10(np.mean(seg.astype(np.float64) ** 2) + 1e-10) if len(seg) else -100.0
    return out


def analyse(path: str, animator: Animator, fps: float, asr) -> dict:
    topo = flame.load_topology()
    samples = audio_io.normalise_loudness(audio_io.load_audio(path))
    anim = animator.animate((samples, 16000), topo.template, fps)
    lmk_d = flame.landmarks(anim.displacements.astype(np.float64))
    gap = (lmk_d[:, 62, 1] - lmk_d[:, 66, 1]) * 1000.0        # mm, + = opening
    jaw_drop = -lmk_d[:, 8, 1] * 1000.0                         # mm, + = chin down
    loud = frame_loudness_db(samples, fps, anim.num_frames)
    speech = loud > loud.max() - 30.0
    silence = loud < loud.max() - 35.0
    result = {"file": Path(path).name, "seconds": round(len(samples) / 16000, 2), "frames": anim.num_frames,
              "speech_frames": int(speech.sum()), "silent_frames": int(silence.sum()),
              "gap_speech_median_mm": float(np.median(gap[speech])) if speech.any() else float("nan"),
              "gap_speech_p90_mm": float(np.percentile(gap[speech], 90)) if speech.any() else float("nan"),
              "gap_silence_median_mm": float(np.median(gap[silence])) if silence.any() else float("nan"),
              "jaw_loudness_correlation": float(np.corrcoef(jaw_drop, loud)[0, 1]),
              "jaw_drop_p90_mm": float(np.percentile(jaw_drop, 90))}
    spans = asr.phoneme_spans(asr.transcribe_waveform(samples, 16000))
    closures = []
    for s in spans:
        if s.phoneme in BILABIALS:
            a = max(0, int(s.start_ms / 1000 * fps) - 1)
            b = min(anim.num_frames, int(np.ceil(s.end_ms / 1000 * fps)) + 2)
            if b > a:
                closures.append(float(gap[a:b].min()))
    result["bilabials_found"] = len(closures)
    result["bilabial_gap_median_mm"] = float(np.median(closures)) if closures else float("nan")
    ref = result["gap_speech_median_mm"]
    result["bilabials_closing"] = int(sum(c < 0.5 * ref for c in closures)) if closures and ref > 0 else 0
    result["_series"] = {"gap": gap.tolist(), "jaw": jaw_drop.tolist(), "loud": loud.tolist(),
                         "bilabial_spans": [(s.start_ms / 1000, s.end_ms / 1000) for s in spans if s.phoneme in BILABIALS]}
    return result


def plot(out: Path, encoder: str, results: list, fps: float) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    shown = results[:3]
    fig, axes = plt.subplots(len(shown), 1, figsize=(8, 2.2 * len(shown)), dpi=90, squeeze=False)
    for ax, r in zip(axes[:, 0], shown):
        s = r["_series"]
        t = np.arange(len(s["gap"])) / fps
        ax.plot(t, s["gap"], color="tab:red", label="lip gap change (mm)")
        ax.plot(t, s["jaw"], color="tab:green", label="chin drop (mm)")
        ax2 = ax.twinx()
        ax2.plot(t, s["loud"], color="grey", lw=0.8, alpha=0.7)
        ax2.set_ylabel("dB", fontsize=7)
        for a, b in s["bilabial_spans"]:
            ax.axvspan(a, b, color="tab:blue", alpha=0.2)
        ax.set_title(f"{r['file']} ({encoder}); shaded: p/b/m found by hama, grey: loudness", fontsize=8)
        ax.legend(fontsize=6, loc="upper left")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    name = f"real_speech_{encoder}.png"
    fig.savefig(out / name)
    plt.close(fig)
    return name


def unique_recordings(files: list) -> list:
    """Drop files whose bytes repeat an earlier one (the bundled sample is also in the test data)."""
    seen, kept = set(), []
    for f in files:
        digest = hashlib.sha256(Path(f).read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            kept.append(f)
    return kept


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("audio", nargs="*", help="recordings (default: bundled sample + pocketsphinx-testdata)")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--encoders", default="hama,mel")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "eval"))
    args = ap.parse_args(argv)
    files = unique_recordings(args.audio or sorted({f for g in DEFAULT_GLOBS for f in glob.glob(g)}))
    if not files:
        raise SystemExit("no recordings found")
    from hama.asr import ASRModel
    asr = ASRModel()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"fps": args.fps, "files": files, "encoders": {}}
    md = ["# Real speech", "", "Written by `tools/evaluate_real.py`; every figure below is in `real_speech.json` "
          "beside this file.", "", "Recordings: " + ", ".join(Path(f).name for f in files), ""]
    for enc in args.encoders.split(","):
        animator = Animator.load(args.weights, encoder=enc)
        rows = [analyse(f, animator, args.fps, asr) for f in files]
        png = plot(out, enc, rows, args.fps)
        for r in rows:
            r.pop("_series")
        agg = {
            "gap_silence_median_mm": float(np.nanmedian([r["gap_silence_median_mm"] for r in rows])),
            "gap_speech_median_mm": float(np.nanmedian([r["gap_speech_median_mm"] for r in rows])),
            "bilabials_found": int(sum(r["bilabials_found"] for r in rows)),
            "bilabials_closing": int(sum(r["bilabials_closing"] for r in rows)),
            "jaw_loudness_correlation_mean": float(np.mean([r["jaw_loudness_correlation"] for r in rows])),
        }
        report["encoders"][enc] = {"weights": animator.describe(), "summary": agg, "files": rows}
        md += [f"## {enc} encoder", "", f"Weights: {animator.describe()}", "",
               f"- lip gap change in silence (median over clips): {agg['gap_silence_median_mm']:.2f} mm; "
               f"in speech: {agg['gap_speech_median_mm']:.2f} mm",
               f"- p/b/m found by hama: {agg['bilabials_found']}; lips at least half-way closed at "
               f"{agg['bilabials_closing']} of them (gap below half the speech median)",
               f"- chin drop vs loudness correlation (mean over clips): {agg['jaw_loudness_correlation_mean']:.2f}", "",
               "| file | s | gap silence (mm) | gap speech median / p90 (mm) | p/b/m found | closing | jaw-loudness r |",
               "|---|---|---|---|---|---|---|"]
        for r in rows:
            md.append(f"| {r['file']} | {r['seconds']} | {r['gap_silence_median_mm']:.2f} | "
                      f"{r['gap_speech_median_mm']:.2f} / {r['gap_speech_p90_mm']:.2f} | {r['bilabials_found']} | "
                      f"{r['bilabials_closing']} | {r['jaw_loudness_correlation']:.2f} |")
        md += ["", f"![lip gap, chin and loudness]({png})", ""]
        print(f"{enc}: {agg}", flush=True)
    (out / "real_speech.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "real_speech.md").write_text("\n".join(md) + "\n")
    print(f"wrote {out / 'real_speech.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
