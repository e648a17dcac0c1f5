"""Evaluate S2L + S2D like the paper (Table 1 and the Table 2 cosine ablation).

On the held-out ``test`` split (unseen voices and sentences) and, separately, on the
held-out language (``test_language``), it reports LE, DE and DAE on landmarks and on dense
vertices, plus LVE (m^2 and mm), for:
  * the model (S2L on speech -> S2D on its landmarks),
  * S2D alone on the true landmarks (how much error S2D adds),
  * baselines: the static neutral face, and the mean training motion at every frame,
  * the ablation: an S2L trained without the cosine loss (``--ablation NAME``), same seed/budget.
Also where the model closes lips the teacher holds open (``closures``) and, for a network with a
seal head (core.lip_seal), where its lip seal does and which of the teacher's seals it makes in
full. The metrics above are the network's own, without the seal (the paper's measure).
Metrics are computed per utterance and averaged over utterances; with ``--max-utterances`` the
utterances are spread over every voice of the split (``sample_utterances``), not taken in shard
order. Writes a Markdown report, JSON (with the evaluated networks' manifest evidence) and
mouth-opening plots under ``docs/eval/``.

    python tools/evaluate.py --corpus data/corpus --weights weights --encoder hama \\
        --ablation-weights runs/ablation --out docs/eval
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import audio as audio_io, flame, lip_aperture, lip_seal, metrics, weights  # noqa: E402
from core.lip_aperture import OPEN_MM, SHUT_MM  # noqa: E402
from core.prosody import runs  # noqa: E402
from core.corpus.dataset import Corpus  # noqa: E402
from core.numpy_runtime import NumpyS2L  # noqa: E402
from core.pipeline import Animator  # noqa: E402

LIPS = list(flame.LIP_LANDMARKS)


def mouth_opening(lmk: np.ndarray) -> np.ndarray:
    """Inner-lip gap (landmark 62 upper to 66 lower) over time, in mm, as a displacement delta."""
    return (lmk[:, 62, 1] - lmk[:, 66, 1]) * 1000.0


def mean_motion(corpus: Corpus, max_utts: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Mean landmark and dense displacement over training frames (the 'mean motion' baseline)."""
    lsum, dsum, n = 0.0, 0.0, 0
    for i, utt in enumerate(corpus.utterances("train")):
        if i >= max_utts:
            break
        lsum = lsum + utt.landmark_disp.sum(0)
        dsum = dsum + utt.dense_disp().sum(0)
        n += utt.num_frames
    return (lsum / n).astype(np.float32), (dsum / n).astype(np.float32)


def sample_utterances(metas: list, max_utts: int, seed: int = 0) -> list:
    """Utterance ids to evaluate: spread over every voice of the split, not the first in shard order.

    Each voice's utterances are put in a seeded random order and the voices (sorted by id) take
    turns, so ``max_utts`` utterances cover min(max_utts, voices) voices with counts that differ
    by at most one between voices that have enough utterances.
    """
    by_voice: dict = {}
    for m in metas:
        by_voice.setdefault(m["voice_id"], []).append(m["utt_id"])
    rng = np.random.default_rng(seed)
    queues = [list(rng.permutation(sorted(by_voice[v]))) for v in sorted(by_voice)]
    chosen = []
    while len(chosen) < max_utts and any(queues):
        for q in queues:
            if q and len(chosen) < max_utts:
                chosen.append(str(q.pop(0)))
    return chosen


def teacher_seals(landmark_disp: np.ndarray) -> np.ndarray:
    """(T,) 0/1 the teacher's seals in (T, 68, 3) displacements in metres: the seal head's own
    training labels (core.losses, so torch; only networks with a seal head need them)."""
    import torch
    from core import losses
    return losses.seal_labels(torch.from_numpy(landmark_disp)[None], unit=1.0)[0].numpy()


def frame_phones(phones: list, num_frames: int, fps: float) -> np.ndarray:
    """(T,) the phone under each frame (stress and length marks dropped; "sil" outside phones)."""
    t = np.arange(num_frames) / fps
    out = np.full(num_frames, "sil", object)
    for start, end, ph in phones:
        out[(t >= start) & (t < end)] = ph.strip("ˈˌː") or "sil"
    return out


def closures(gap_teacher: np.ndarray, gap_model: np.ndarray, logits: np.ndarray | None = None,
             labels: np.ndarray | None = None, gap_sealed: np.ndarray | None = None,
             phones: np.ndarray | None = None) -> dict:
    """Counts of where the lips close against the teacher, from gaps (T,) in mm: frames the
    teacher holds open (over ``OPEN_MM``) that the network closes (under ``SHUT_MM``), in all
    and per phone (``phones`` (T,) from ``frame_phones``: [closed, open frames]). With a
    seal head's ``logits``, the teacher's seal ``labels`` (T,) 0/1 and the gap with core.lip_seal
    applied (``gap_sealed``), also: the open frames closed with the seal, and the teacher's seal
    events (runs of labelled frames) where the seal is full within the run +-1 frame."""
    open_ = gap_teacher > OPEN_MM
    closed = open_ & (gap_model < SHUT_MM)
    out = {"open_frames": int(open_.sum()), "open_frames_closed": int(closed.sum())}
    if phones is not None:
        out["by_phone"] = {str(ph): [int((closed & (phones == ph)).sum()), int((open_ & (phones == ph)).sum())]
                           for ph in sorted(set(phones[open_]))}
    if logits is not None:
        w = lip_seal.seal_weights(logits)
        full = [bool((w[max(0, a - 1):b + 1] >= 1).any()) for a, b in runs(labels > 0)]
        out.update(open_frames_closed_with_seal=int((open_ & (gap_sealed < SHUT_MM)).sum()),
                   seal_events=len(full), seal_events_sealed=int(sum(full)))
    return out


def summarise(rows: list) -> dict:
    keys = rows[0].keys()
    return {k: float(np.nanmean([r[k] for r in rows])) if not all(np.isnan(r[k]) for r in rows) else float("nan")
            for k in keys}


def evaluate_split(corpus, split, animator, s2d, ablation_s2l, means, max_utts, plot_dir, stem) -> dict:
    topo = flame.load_topology()
    lips_dense = topo.regions["lips"]
    results = {name: {"landmarks": [], "dense": []} for name in
               ("model", "s2d_on_true_landmarks", "static", "mean_motion", "ablation_no_cosine")}
    plots, region_de, closed = [], [], []
    metas = corpus.metadata(split)
    chosen = set(sample_utterances(metas, max_utts))
    # Only the shards that hold a chosen utterance are read.
    shards = [s for s in corpus.shards
              if any(m["utt_id"] in chosen for m in json.loads((corpus.root / "shards" / f"{s}.json").read_text()))]
    voices = set()
    for utt in corpus.utterances(split, shards=shards):
        if utt.meta["utt_id"] not in chosen:
            continue
        voices.add(utt.meta["voice_id"])
        samples = audio_io.normalise_loudness(utt.audio)
        y_l = utt.landmark_disp.astype(np.float64)
        y_d = utt.dense_disp().astype(np.float64)
        feats = animator.encoder.features(samples)
        code = utt.codes if animator.condition_dim else None    # the utterance's emotion and style
        gap_sealed = logits = labels = None
        if animator.has_seal_head:
            p_l, logits = animator.s2l(feats, utt.num_frames, utt.fps, 0.0, code, return_seal=True)
            labels = teacher_seals(y_l)
            sealed = lip_aperture.remove_opening(p_l, lip_seal.seal_weights(logits), lip_seal.press(logits))
            gap_sealed = lip_aperture.vertical_gap(sealed) * 1000.0
        else:
            p_l = animator.s2l(feats, utt.num_frames, utt.fps, 0.0, code)
        closed.append(closures(lip_aperture.vertical_gap(y_l) * 1000.0, lip_aperture.vertical_gap(p_l) * 1000.0,
                               logits, labels, gap_sealed,
                               frame_phones(utt.meta.get("phones", []), utt.num_frames, utt.fps)))
        preds = {"model": p_l}
        if ablation_s2l is not None:
            preds["ablation_no_cosine"] = ablation_s2l(feats, utt.num_frames, utt.fps, 0.0,
                                                       utt.codes if ablation_s2l.config["condition_dim"] else None)
        for name, p_l in preds.items():
            p_d = np.concatenate([s2d(p_l[j:j + 64]) for j in range(0, len(p_l), 64)])
            results[name]["landmarks"].append(metrics.evaluate(p_l, y_l, LIPS))
            results[name]["dense"].append(metrics.evaluate(p_d, y_d, lips_dense))
            if name == "model":   # dense DE per face region (lips, jaw and mouth, upper face)
                err = np.linalg.norm(p_d - y_d, axis=-1)
                region_de.append({k: float(err[:, idx].mean()) for k, idx in topo.regions.items()})
        true_d = np.concatenate([s2d(utt.landmark_disp[j:j + 64]) for j in range(0, utt.num_frames, 64)])
        results["s2d_on_true_landmarks"]["landmarks"].append(metrics.evaluate(y_l, y_l, LIPS))
        results["s2d_on_true_landmarks"]["dense"].append(metrics.evaluate(true_d, y_d, lips_dense))
        zeros_l, zeros_d = np.zeros_like(y_l), np.zeros_like(y_d)
        results["static"]["landmarks"].append(metrics.evaluate(zeros_l, y_l, LIPS))
        results["static"]["dense"].append(metrics.evaluate(zeros_d, y_d, lips_dense))
        results["mean_motion"]["landmarks"].append(metrics.evaluate(zeros_l + means[0], y_l, LIPS))
        results["mean_motion"]["dense"].append(metrics.evaluate(zeros_d + means[1], y_d, lips_dense))
        if plot_dir is not None and len(plots) < 3:
            plots.append(_plot(plot_dir, stem, split, utt, preds["model"], y_l))
    out = {}
    for name, r in results.items():
        if r["landmarks"]:
            out[name] = {"landmarks": summarise(r["landmarks"]), "dense": summarise(r["dense"])}
    out["utterances"] = len(results["model"]["landmarks"])
    if region_de:
        out["model_dense_DE_by_region_mm"] = {k: 1000 * float(np.mean([r[k] for r in region_de]))
                                              for k in region_de[0]}
    if closed:
        out["closures"] = {k: int(sum(r[k] for r in closed)) for k in closed[0] if k != "by_phone"}
        by_phone: dict = {}
        for r in closed:
            for ph, counts in r["by_phone"].items():
                by_phone[ph] = [a + b for a, b in zip(by_phone.get(ph, (0, 0)), counts)]
        out["closures"].update(open_above_mm=OPEN_MM, closed_below_mm=SHUT_MM,
                               by_phone=dict(sorted(by_phone.items(), key=lambda kv: -kv[1][0])))
    out["voices"] = len(voices)
    out["voices_in_split"] = len({m["voice_id"] for m in metas})
    out["sampling"] = "round-robin over the split's voices, seeded order within each voice (sample_utterances)"
    out["plots"] = plots
    return out


def _plot(plot_dir: Path, stem: str, split: str, utt, pred_l, true_l) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = np.arange(utt.num_frames) / utt.fps
    fig, ax = plt.subplots(figsize=(8, 2.6), dpi=90)
    ax.plot(t, mouth_opening(true_l), label="target (articulation teacher)", color="black", lw=1.5)
    ax.plot(t, mouth_opening(pred_l), label="predicted (S2L)", color="tab:red", lw=1.2)
    for start, end, ph in utt.meta.get("phones", []):
        if ph in ("p", "b", "m"):
            ax.axvspan(start, end, color="tab:blue", alpha=0.15)
    ax.set_xlabel("seconds")
    ax.set_ylabel("lip gap change (mm)")
    ax.set_title(f"{split}: {utt.meta['voice_id']} ({utt.meta['language']}) - shaded: p/b/m", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    name = f"{stem}_mouth_{split}_{utt.meta['utt_id']}.png".replace("/", "_").replace(":", "_").replace("+", "_")
    fig.savefig(plot_dir / name)
    plt.close(fig)
    return name


def _fmt(v, scale=1.0, digits=3):
    return "n/a" if v is None or np.isnan(v) else f"{v * scale:.{digits}f}"


def report_markdown(result: dict) -> str:
    lines = [f"# Evaluation ({result['encoder']} encoder)", "",
             f"Written by `tools/evaluate.py`; every figure below is in `{result['stem']}.json` beside this file.", "",
             f"Weights: {result['weights']}", f"Corpus: {result['corpus']}", "",
             "Per-utterance metrics averaged over utterances. LE: max lip-point L2 error per frame, "
             "DE: mean L2 displacement error, DAE: mean angle between displacement vectors (undefined "
             "for a static prediction), LVE: max squared lip-vertex error per frame (m^2; and its root in mm).", ""]
    for split in ("test", "test_language"):
        if split not in result["splits"]:
            continue
        r = result["splits"][split]
        title = "held-out voices and sentences" if split == "test" else "held-out language"
        spread = f", {r['voices']} of {r['voices_in_split']} voices" if "voices" in r else ""
        lines += [f"## `{split}` - {title} ({r['utterances']} utterances{spread})", "",
                  "| method | LE lmk (mm) | DE lmk (mm) | DAE lmk (deg) | LE dense (mm) | DE dense (mm) | DAE dense (deg) | LVE (m^2) | LVE (mm) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name in ("static", "mean_motion", "model", "ablation_no_cosine", "s2d_on_true_landmarks"):
            if name not in r:
                continue
            lm, de = r[name]["landmarks"], r[name]["dense"]
            lmk_cols = (["-", "-", "-"] if name == "s2d_on_true_landmarks"
                        else [_fmt(lm["LE"], 1000), _fmt(lm["DE"], 1000), _fmt(lm["DAE"], 1, 1)])
            lines.append(f"| {name} | " + " | ".join(lmk_cols + [
                _fmt(de["LE"], 1000), _fmt(de["DE"], 1000), _fmt(de["DAE"], 1, 1),
                f"{de['LVE']:.3e}", _fmt(de["lve_mm"], 1, 2)]) + " |")
        st, mo = r["static"]["dense"], r["model"]["dense"]
        lines += ["", f"Model / static: dense DE {mo['DE'] / st['DE']:.2f}x, dense lip LE {mo['LE'] / st['LE']:.2f}x, "
                  f"landmark lip LE {r['model']['landmarks']['LE'] / r['static']['landmarks']['LE']:.2f}x.", ""]
        if "model_dense_DE_by_region_mm" in r:
            lines += ["Model dense DE by region: " + ", ".join(
                f"{k} {v:.3f} mm" for k, v in r["model_dense_DE_by_region_mm"].items()) + ".", ""]
        if "closures" in r:
            c = r["closures"]
            lines += [f"Lips closed where the teacher opens them: of the {c['open_frames']} frames the teacher holds "
                      f"open (inner-lip gap over {c['open_above_mm']:g} mm), the model closes {c['open_frames_closed']} "
                      f"({100 * c['open_frames_closed'] / max(c['open_frames'], 1):.1f} %; gap under "
                      f"{c['closed_below_mm']:g} mm)"
                      + (f"; with the lip seal (core.lip_seal, from the seal head; not in the figures above) "
                         f"{c['open_frames_closed_with_seal']} "
                         f"({100 * c['open_frames_closed_with_seal'] / max(c['open_frames'], 1):.1f} %), and the seal "
                         f"is full at {c['seal_events_sealed']} of the teacher's {c['seal_events']} seals"
                         if "seal_events" in c else "") + ". Where the model closes them, by phone (closed / open "
                      "frames; the phones the corpus engine gave): "
                      + ", ".join(f"{ph} {n}/{o}" for ph, (n, o) in list(c["by_phone"].items())[:10] if n) + ".", ""]
        lines += [f"![mouth opening]({p})" for p in r["plots"]] + [""]
    return "\n".join(lines) + "\n"


def _evidence(directory, names: list) -> dict:
    """What the weights manifest records of each evaluated network (reports cite it, e.g. epochs)."""
    networks = weights.read_manifest(directory)["networks"]
    keep = ("sha256", "trained", "epochs", "epochs_run", "early_stopped", "lr", "seed", "cosine_loss", "log_sha256")
    return {n: {k: networks[n][k] for k in keep if k in networks[n]} for n in names if n in networks}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--weights", default=str(weights.DEFAULT_DIR))
    ap.add_argument("--encoder", default="hama")
    ap.add_argument("--ablation-weights", help="folder holding the S2L trained without the cosine loss")
    ap.add_argument("--ablation-name", default=None, help="its network name (default s2l_<encoder>)")
    ap.add_argument("--max-utterances", type=int, default=200,
                    help="per split, spread over the split's voices")
    ap.add_argument("--out", default=str(ROOT / "docs" / "eval"))
    ap.add_argument("--tag", default=None, help="file name stem (default eval_<encoder>)")
    args = ap.parse_args(argv)

    t0 = time.time()
    corpus = Corpus(args.corpus)
    animator = Animator.load(args.weights, encoder=args.encoder, backend="numpy")
    s2d = animator.s2d
    ablation = None
    if args.ablation_weights:
        cfg, state, _ = weights.load_network(args.ablation_weights, args.ablation_name or f"s2l_{args.encoder}", "s2l")
        ablation = NumpyS2L(cfg, state)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    means = mean_motion(corpus)
    result = {"encoder": args.encoder, "weights": animator.describe(),
              "corpus": f"{corpus.root} ({corpus.manifest['stats']['hours']} h)", "splits": {},
              "networks": _evidence(args.weights, [f"s2l_{args.encoder}", "s2d"])}
    if args.ablation_weights:
        result["ablation_networks"] = _evidence(args.ablation_weights, [args.ablation_name or f"s2l_{args.encoder}"])
    stem = args.tag or f"eval_{args.encoder}"
    result["stem"] = stem
    for split in ("test", "test_language"):
        if corpus.metadata(split):
            result["splits"][split] = evaluate_split(corpus, split, animator, s2d, ablation, means,
                                                     args.max_utterances, out, stem)
            print(f"{split}: done ({time.time() - t0:.0f} s)", flush=True)
    result["seconds"] = time.time() - t0
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    md = report_markdown(result)
    (out / f"{stem}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
