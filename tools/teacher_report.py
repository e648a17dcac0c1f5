"""Measure the articulation teacher against the published articulation figures (docs/corpus.md).

    python tools/teacher_report.py --out docs/corpus/teacher.json

Reports, on the FLAME template identity:
  * held targets: the inner-lip vertical gap (core.lip_aperture.vertical_gap) and chin drop of
    every viseme class at its target (a held, citation-form sound);
  * running speech: the gap over speech frames of sentences from four TTS voices (median, 95th
    percentile, largest), the peak gap of each class's segments, the mesh aperture at p/b/m
    (sealed when <= 0.5 mm) and in pauses;
  * emotion and style: the same figures under each emotion code at full strength and at the two
    ends of the style code, and the mouth-corner offset (landmark 48) each emotion gives;
  * recorded speech: the gap over speech frames when the teacher animates the phones hama finds
    in the corpus' recorded training voices (real talkers, faster than the TTS voices), at the
    default strength and at 1.15x jaw and lip strength (``--recorded-files`` per voice; 0: off).
Needs the corpus TTS engines (tools/setup_corpus.sh).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import expression, flame, lip_aperture  # noqa: E402
from core.corpus import articulation, deformers, texts  # noqa: E402
from core.corpus.engines import VoiceSpec, get_engine  # noqa: E402

VOICES = ((VoiceSpec("espeak", "en-us+m3", "en"), "en"), (VoiceSpec("espeak", "de+f2", "de"), "de"),
          (VoiceSpec("flite", "slt", "en"), "en"), (VoiceSpec("festival", "voice_kal_diphone", "en"), "en"))
FPS = 30.0


def held_targets(ident) -> dict:
    out = {}
    for vis, (target, *_rest) in articulation._TABLE.items():
        kappa = np.array([articulation.CONTACT_CLASSES.get(vis, 0.0)])
        p = np.array(target, float)[None]
        p[:, articulation.OPEN] *= 1 - kappa
        lmk = ident.landmarks(articulation.coefficients(p, kappa, ident))[0]
        out[vis] = {"gap_mm": round(float(lip_aperture.vertical_gap(lmk)) * 1000, 2),
                    "chin_mm": round(float(-lmk[8, 1]) * 1000, 2)}
    return out


def running_speech(ident, syns, expr=None) -> dict:
    gaps, sealed, rest, peaks, corner = [], [], [], {}, []
    for syn in syns:
        c = articulation.articulate(syn.phones, syn.duration, FPS, ident, articulation.Style(), expr)
        lmk = ident.landmarks(c)
        gap = lip_aperture.vertical_gap(lmk) * 1000
        ap = lip_aperture.aperture(ident.neutral[None] + ident.dense(c)) * 1000
        t = np.arange(len(c)) / FPS
        label = np.full(len(c), "sil", object)
        for s in articulation.segments_from_phones(syn.phones):
            m = (t >= s.start) & (t < s.end)
            label[m] = s.viseme
            if m.any():
                peaks.setdefault(s.viseme, []).append(float(gap[m].max()))
                if s.viseme == "PBM":
                    sealed.append(float(ap[m].min()))
        gaps += list(gap[label != "sil"])
        rest += list(ap[label == "sil"])
        corner.append(lmk[:, 48] * 1000)
    corner = np.concatenate(corner)
    return {"gap_speech_median_mm": round(float(np.median(gaps)), 2),
            "gap_speech_p95_mm": round(float(np.percentile(gaps, 95)), 2),
            "gap_max_mm": round(float(np.max(gaps)), 2),
            "bilabials": len(sealed), "bilabials_sealed_share": round(float(np.mean(np.array(sealed) <= 0.5)), 3),
            "pause_frames_closed_share": round(float(np.mean(np.array(rest) <= 1.0)), 3),
            "corner_offset_mm": [round(float(x), 2) for x in np.median(corner, axis=0)],
            "peak_gap_by_class_mm": {k: round(float(np.median(v)), 2) for k, v in sorted(peaks.items())}}


def recorded_speech(ident, files_per_voice: int) -> dict:
    """The teacher on hama's phones of the corpus' recorded training voices (generate.RECORDED_VOICES)."""
    import glob
    import os
    from hama.asr import ASRModel
    from core.corpus.engines.recorded import phones_from_spans
    from core.corpus.generate import RECORDED_VOICES, RECORDINGS_ROOT
    from tools.evaluate_real import loudness, recording     # measured as the real-speech evaluation does
    asr = ASRModel()
    strengths = (1.0, 1.15)
    gaps, voices, seconds = {k: [] for k in strengths}, [], 0.0
    for name, _lang, split in RECORDED_VOICES:
        files = sorted(glob.glob(f"{RECORDINGS_ROOT}/{name}/*.wav"), key=lambda f: (-os.path.getsize(f), f))
        if split != "train" or not files:
            continue
        voices.append(name)
        for f in files[:files_per_voice]:
            samples, spans = recording(f, asr)
            if not spans:
                continue
            duration = len(samples) / 16000
            seconds += duration
            phones = phones_from_spans(spans, samples)
            for k in strengths:
                c = articulation.articulate(phones, duration, FPS, ident, articulation.Style(jaw_strength=k, lip_strength=k))
                c = articulation.rest_in_pauses(c, samples, 16000, FPS)
                gap = lip_aperture.vertical_gap(ident.landmarks(c)) * 1000
                gaps[k] += list(gap[loudness(samples, FPS, len(gap))[2]])
    return {"voices": voices, "seconds": round(seconds, 1),
            "by_strength": {f"{k:g}": {"gap_speech_median_mm": round(float(np.median(g)), 2),
                                       "gap_speech_p95_mm": round(float(np.percentile(g, 95)), 2),
                                       "gap_max_mm": round(float(np.max(g)), 2)} for k, g in gaps.items() if g}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "docs" / "corpus" / "teacher.json"))
    ap.add_argument("--sentences", type=int, default=8, help="sentences per voice")
    ap.add_argument("--recorded-files", type=int, default=8, help="recordings per recorded training voice (0: off)")
    args = ap.parse_args(argv)
    topo = flame.load_topology()
    ident = deformers.identity_basis("template", topo.template.astype(np.float64))
    syns = []
    for spec, lang in VOICES:
        made = get_engine(spec.engine).synthesize_many(spec, list(texts.load_sentences(lang))[:args.sentences])
        syns += [s for s in made if s is not None]
    report = {"voices": [v.voice_id for v, _ in VOICES], "sentences": len(syns),
              "seconds": round(sum(s.duration for s in syns), 1),
              "held_targets": held_targets(ident), "neutral": running_speech(ident, syns), "emotions": {}, "style": {}}
    for emotion in expression.EMOTIONS[1:]:
        report["emotions"][emotion] = running_speech(ident, syns, expression.Expression.constant(emotion, 1.0))
    for style in (-1.0, 1.0):
        report["style"][f"{style:+g}"] = running_speech(ident, syns, expression.Expression.constant("neutral", 1.0, style))
    if args.recorded_files:
        report["recorded_speech"] = recorded_speech(ident, args.recorded_files)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    n = report["neutral"]
    print(f"neutral running speech: gap median {n['gap_speech_median_mm']} mm, p95 {n['gap_speech_p95_mm']} mm, "
          f"max {n['gap_max_mm']} mm; p/b/m sealed {n['bilabials_sealed_share']:.0%}; "
          f"pauses closed {n['pause_frames_closed_share']:.0%}")
    for k, r in report.get("recorded_speech", {}).get("by_strength", {}).items():
        print(f"recorded training voices, strength {k}: gap median {r['gap_speech_median_mm']} mm, "
              f"p95 {r['gap_speech_p95_mm']} mm")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
