"""Evaluate the ARKit-52 output on held-out synthetic speech -> docs/eval/arkit.json and .md.

Held-out speech: the corpus catalogue's *test* espeak voices speaking test-split sentences
(neither voice nor sentence is in training), each with 0.8 s of silence before and after it.
For each utterance:

* teacher  = the articulation teacher (core.corpus.articulation) on the template identity;
* dense    = the shipped networks (core.pipeline.Animator) on the utterance's audio;
* arkit(dense)   = the mesh rebuilt from the 52 weights solved from ``dense``;
* arkit(teacher) = the same from the teacher's own motion (how well the basis spans it).

Reported: lip LE (max L2 over the lip vertices, core.metrics) of each against the teacher and
of arkit(dense) against dense; the true lip aperture (core.lip_aperture) at every p/b/m
(sealed when the smallest aperture over the segment is <= 0.5 mm); the largest weight during
leading / trailing silence; and the solver's time on a 60 s clip at 30 fps.
Usage: python tools/evaluate_arkit.py [--sentences 6] [--voices 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import arkit, lip_aperture, metrics  # noqa: E402
from core.corpus import articulation, deformers, generate, texts  # noqa: E402
from core.corpus.engines import Phone, Synthesis, get_engine  # noqa: E402
from core.flame import load_topology  # noqa: E402
from core.meshio import read_mesh  # noqa: E402

FPS = 30.0
SEALED_MM = 0.5
PAD_SECONDS = 0.8


def held_out_utterances(voices: int, sentences: int):
    cfg = generate.CorpusConfig(engines=("espeak",))
    test = [v for v in generate.voice_catalogue(cfg) if v.split == "test" and v.spec.engine == "espeak"]
    test.sort(key=lambda v: (v.spec.language != "en", v.voice_id))
    engine = get_engine("espeak")
    for voice in test[:voices]:
        pool = texts.sentences_for(voice.spec.language, "test")
        for text in pool[:sentences]:
            syn = engine.synthesize(voice.spec, text)
            if syn is not None and 0.5 < syn.duration < 12 and sum(1 for p in syn.phones if p.ipa) >= 3:
                yield voice, padded(syn)


def padded(syn, seconds: float = PAD_SECONDS):
    """The utterance with digital silence before and after it (a pause phone in the timing), so
    every clip has frames where the teacher is at rest."""
    pad = np.zeros(int(round(seconds * 16000)), np.float32)
    phones = ([Phone(0.0, seconds, "")] + [Phone(p.start + seconds, p.end + seconds, p.ipa) for p in syn.phones]
              + [Phone(syn.duration + seconds, syn.duration + 2 * seconds, "")])
    return Synthesis(np.concatenate([pad, syn.audio, pad]), phones, syn.text)


def bilabial_minima(vertices, phones):
    """Smallest aperture (mm) over each p/b/m segment's frames."""
    t = np.arange(len(vertices)) / FPS
    out = []
    for s in articulation.segments_from_phones(phones):
        if s.viseme != "PBM":
            continue
        m = np.flatnonzero((t >= s.start) & (t < s.end))
        if len(m):
            out.append(float(lip_aperture.aperture(vertices[m]).min() * 1000))
    return out


SHAPES_AT_BILABIALS = ("jawOpen", "mouthClose", "mouthPress", "mouthRollLower")   # L + R summed


def bilabial_frames(phones, n):
    t = np.arange(n) / FPS
    at = np.zeros(n, bool)
    for s in articulation.segments_from_phones(phones):
        if s.viseme == "PBM":
            at |= (t >= s.start) & (t < s.end)
    return at


def pause_frames(teacher):
    """Frames where the teacher is (nearly) at rest: no vertex moved by more than 0.5 mm."""
    return np.linalg.norm(teacher, axis=-1).max(axis=1) < 5e-4


def mouth_sheet(path, neutral, syn, teacher, dense, rebuilt, size=150):
    from core.corpus.raster import label, render, write_png
    topo = load_topology()
    L = topo.landmarks(neutral)
    centre = 0.5 * (L[48] + L[54]) + np.array([0, -0.006, 0])
    n = len(teacher)
    opening = lip_aperture.vertical_gap(topo.landmarks(teacher))
    t = np.arange(n) / FPS
    pbm = [s for s in articulation.segments_from_phones(syn.phones) if s.viseme == "PBM"]
    picks = {int(np.argmax(opening))}
    if pbm:
        m = np.flatnonzero((t >= pbm[0].start) & (t < pbm[0].end))
        if len(m):
            picks.add(int(m[np.argmin(lip_aperture.aperture(neutral[None] + teacher[m]))]))
    for f in np.linspace(0, n - 1, 8).astype(int)[1:-1]:
        if len(picks) < 6:
            picks.add(int(f))
    frames = sorted(picks)
    rows = []
    for tag, motion in (("teacher", teacher), ("dense", dense), ("arkit", rebuilt)):
        tiles = []
        for f in frames:
            img = render(neutral + motion[f], topo.faces, "front", size=size, center=centre, extent=0.075)
            tiles.append(label(img, f"{tag} {f}"))
        rows.append(np.concatenate(tiles, axis=1))
    write_png(path, np.concatenate(rows, axis=0))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--voices", type=int, default=2)
    ap.add_argument("--sentences", type=int, default=6, help="sentences per voice")
    ap.add_argument("--out", default=str(ROOT / "docs" / "eval" / "arkit.json"))
    args = ap.parse_args(argv)

    from core.pipeline import Animator
    topo = load_topology()
    lips = topo.regions["lips"]
    neutral = read_mesh(ROOT / "core" / "assets" / "heads" / "template_neutral.ply")[0].astype(np.float64)
    ident = deformers.identity_basis("template", neutral)
    animator = Animator.load()
    basis = arkit.load_basis()

    rows, acc = [], {k: [] for k in ("teacher", "dense", "arkit_dense", "arkit_teacher")}
    preview = None
    shape_at = {src: {name: ([], []) for name in SHAPES_AT_BILABIALS} for src in ("dense", "teacher")}
    le = {k: [] for k in ("dense_vs_teacher", "arkit_dense_vs_teacher", "arkit_dense_vs_dense",
                          "arkit_teacher_vs_teacher")}
    silence_max, clips, solve_s = [], [], 0.0
    for voice, syn in held_out_utterances(args.voices, args.sentences):
        coeffs = articulation.articulate(syn.phones, syn.duration, FPS, ident, articulation.Style())
        teacher = ident.dense(coeffs)
        dense = animator.animate(syn.audio, neutral, FPS, sample_rate=16000).displacements
        n = min(len(teacher), len(dense))
        teacher, dense = teacher[:n], dense[:n]
        t0 = time.perf_counter()
        w_dense = arkit.solve(dense)
        w_teacher = arkit.solve(teacher)
        solve_s += time.perf_counter() - t0
        rebuilt, rebuilt_t = basis.dense(w_dense), basis.dense(w_teacher)
        clips.append(dense)
        r = {"voice": voice.voice_id, "text": syn.text, "frames": n,
             "le_mm": {"dense_vs_teacher": metrics.lip_error(dense, teacher, lips) * 1000,
                       "arkit_dense_vs_teacher": metrics.lip_error(rebuilt, teacher, lips) * 1000,
                       "arkit_dense_vs_dense": metrics.lip_error(rebuilt, dense, lips) * 1000,
                       "arkit_teacher_vs_teacher": metrics.lip_error(rebuilt_t, teacher, lips) * 1000}}
        for k, v in r["le_mm"].items():
            le[k].append((v, n))
        for k, disp in (("teacher", teacher), ("dense", dense), ("arkit_dense", rebuilt), ("arkit_teacher", rebuilt_t)):
            acc[k] += bilabial_minima(neutral[None] + disp, syn.phones)
        for src, w in (("dense", w_dense), ("teacher", w_teacher)):
            at = bilabial_frames(syn.phones, n)
            for name in SHAPES_AT_BILABIALS:
                col = w[:, arkit.NAMES.index(name)] if name in arkit.NAMES else \
                    w[:, arkit.NAMES.index(name + "Left")] + w[:, arkit.NAMES.index(name + "Right")]
                shape_at[src][name][0].extend(col[at].tolist())
                shape_at[src][name][1].extend(col[~at & ~pause_frames(teacher)].tolist())
        if preview is None:
            preview = (syn, teacher, dense, rebuilt)
        rest = pause_frames(teacher)
        if rest.any():
            silence_max.append((float(w_teacher[rest].max()), float(w_dense[rest].max()), int(rest.sum())))
        rows.append({**r, "le_mm": {k: round(v, 3) for k, v in r["le_mm"].items()}})
        print(f"{voice.voice_id:24s} {n:4d} frames  LE dense {r['le_mm']['dense_vs_teacher']:.2f}  "
              f"arkit(dense) {r['le_mm']['arkit_dense_vs_teacher']:.2f}  vs dense {r['le_mm']['arkit_dense_vs_dense']:.2f}  "
              f"arkit(teacher) {r['le_mm']['arkit_teacher_vs_teacher']:.2f} mm", flush=True)

    def mean(pairs):
        return round(float(sum(v * n for v, n in pairs) / sum(n for _, n in pairs)), 3)

    # speed: one 60 s clip at 30 fps (the utterances' dense motion, repeated)
    long = np.concatenate(clips)
    long = np.concatenate([long] * int(np.ceil(1800 / len(long))))[:1800]
    arkit.solve(long[:30])
    t0 = time.perf_counter()
    arkit.solve(long)
    t_long = time.perf_counter() - t0

    # digital silence through the networks, then the solver
    quiet = animator.animate(np.zeros(32000, np.float32), neutral, FPS, sample_rate=16000).displacements
    w_quiet = arkit.solve(quiet)
    rest_frames = int(sum(s[2] for s in silence_max))
    silence = {"teacher_pause_frames": rest_frames,
               "max_weight_solved_from_teacher_at_rest": round(max((s[0] for s in silence_max), default=0.0), 4),
               "max_weight_solved_from_dense_at_teacher_rest": round(max((s[1] for s in silence_max), default=0.0), 4),
               "dense_peak_mm_on_2s_digital_silence": round(float(np.linalg.norm(quiet, axis=-1).max() * 1000), 3),
               "max_weight_on_2s_digital_silence": round(float(w_quiet.max()), 4),
               "max_weight_on_zero_motion": float(arkit.solve(np.zeros((10, 5023, 3), np.float32)).max())}
    le_frame_mean = {k: mean(v) for k, v in le.items()}
    ratio = le_frame_mean["arkit_dense_vs_teacher"] / le_frame_mean["dense_vs_teacher"]
    dense_ap, arkit_ap = np.array(acc["dense"]), np.array(acc["arkit_dense"])
    kept = {"dense_sealed": int((dense_ap <= SEALED_MM).sum()),
            "still_sealed_after_arkit": int(((dense_ap <= SEALED_MM) & (arkit_ap <= SEALED_MM)).sum()),
            "max_aperture_increase_mm": round(float((arkit_ap - dense_ap).max()), 3),
            "median_aperture_change_mm": round(float(np.median(arkit_ap - dense_ap)), 3)}
    sealed = {k: {"bilabials": len(v), "sealed_share": round(float(np.mean(np.array(v) <= SEALED_MM)), 3) if v else None,
                  "median_min_aperture_mm": round(float(np.median(v)), 3) if v else None} for k, v in acc.items()}
    result = {
        "what": "ARKit-52 weights solved from dense motion on held-out synthetic speech (tools/evaluate_arkit.py)",
        "utterances": len(rows), "frames": int(sum(r["frames"] for r in rows)), "fps": FPS,
        "networks": animator.describe(),
        "lip_le_mm": le_frame_mean,
        "le_ratio_arkit_over_dense": round(ratio, 3),
        "le_within_1.2x": bool(ratio <= 1.2),
        "bilabial_min_aperture": sealed,
        "sealed_threshold_mm": SEALED_MM,
        "dense_closures_kept": kept,
        "mean_weight_at_bilabials_vs_other_speech": {
            src: {name: [round(float(np.mean(a)), 3) if a else None, round(float(np.mean(b)), 3) if b else None]
                  for name, (a, b) in d.items()} for src, d in shape_at.items()},
        "silence": silence,
        "solve_seconds_60s_clip_30fps": round(t_long, 3),
        "solver": {"smoothness": arkit.SMOOTHNESS, "sparsity": arkit.SPARSITY, "ridge": arkit.RIDGE,
                   "iterations": arkit.ITERATIONS},
        "machine": f"{platform.machine()}, {platform.python_version()}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        "utterance_rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    md = [
        "# ARKit-52 output on held-out synthetic speech",
        "",
        f"Made by `python tools/evaluate_arkit.py --voices {args.voices} --sentences {args.sentences}`: "
        f"{len(rows)} utterances ({result['frames']} frames at {FPS:g} fps) from the corpus catalogue's test espeak "
        "voices on test-split sentences (0.8 s of silence added before and after each), "
        "teacher on the template identity.",
        f"Dense output: {animator.describe()}.",
        "",
        "| lip LE (mm, frame-weighted mean) | value |", "|---|---|",
        f"| dense output vs teacher | {le_frame_mean['dense_vs_teacher']:.3f} |",
        f"| mesh rebuilt from the ARKit weights solved from dense, vs teacher | {le_frame_mean['arkit_dense_vs_teacher']:.3f} |",
        f"| rebuilt vs dense (what the 52 shapes lose) | {le_frame_mean['arkit_dense_vs_dense']:.3f} |",
        f"| rebuilt from weights solved from the teacher, vs teacher (basis span) | {le_frame_mean['arkit_teacher_vs_teacher']:.3f} |",
        "",
        f"Ratio arkit(dense) / dense against the teacher: **{ratio:.3f}** (target <= 1.2: "
        f"{'met' if ratio <= 1.2 else 'NOT met'}).",
        "",
        f"| bilabials (p/b/m): smallest lip aperture over the segment | count | sealed (<= {SEALED_MM} mm) | median (mm) |",
        "|---|---|---|---|",
    ]
    for k, v in sealed.items():
        md.append(f"| {k} | {v['bilabials']} | {v['sealed_share']} | {v['median_min_aperture_mm']} |")
    md += ["",
           f"Closures the dense output makes (<= {SEALED_MM} mm) that stay closed on the ARKit mesh: "
           f"{kept['still_sealed_after_arkit']} of {kept['dense_sealed']}; aperture change at p/b/m, ARKit minus "
           f"dense: median {kept['median_aperture_change_mm']} mm, largest {kept['max_aperture_increase_mm']} mm.",
           "", "| mean weight at p/b/m frames / other speech frames | " + " | ".join(SHAPES_AT_BILABIALS) + " |",
           "|---|" + "---|" * len(SHAPES_AT_BILABIALS)]
    for src, per_shape in result["mean_weight_at_bilabials_vs_other_speech"].items():
        md.append(f"| solved from {src} | " + " | ".join(f"{a} / {b}" for a, b in per_shape.values()) + " |")
    md += ["(mouthPress: Left + Right.)",
           "",
           "Silence: " + ", ".join(f"{k} = {v}" for k, v in silence.items()) + ".",
           f"Solver time for a 60 s clip at 30 fps (1800 frames): {t_long:.3f} s ({result['machine']}).", ""]
    if preview is not None:
        png = out.with_name(out.stem + "_mouth.png")
        mouth_sheet(png, neutral, *preview)
        md += [f"![teacher, dense and ARKit mouth]({png.name})",
               "",
               f"`{png.name}`: the first utterance's mouth at six frames (the widest opening, the "
               "first p/b/m, and evenly spaced ones); rows: teacher, dense output, mesh rebuilt from the "
               "52 weights solved from the dense output.", ""]
    out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
