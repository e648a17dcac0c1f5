"""Train S2L (speech -> 68 landmark displacements) on a corpus in the project's format.

Paper defaults: Adam lr 1e-4, BiLSTM 3 x 64 (dropout 0.2), loss 0.1 rec + 1 mouth +
1e-4 cosine + 10 velocity. CPU-friendly: encoder features are cached once per corpus,
training uses random crops, every epoch is validated and checkpointed, ``--resume``
continues a stopped run, ``--budget-minutes`` stops cleanly at a wall-time limit, and early
stopping ends the run when validation stops improving. Deterministic for a given seed.

    python tools/train_s2l.py --corpus data/corpus --encoder hama --run-dir runs/s2l_hama \\
        --export weights/
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import losses, metrics  # noqa: E402
from core.expression import CODE_DIM, CODE_NAMES  # noqa: E402
from core.corpus import non_speech  # noqa: E402
from core.corpus.dataset import Corpus  # noqa: E402
from core.corpus.feature_augment import FeatureAugment  # noqa: E402
from core.pipeline import ENCODER_CONFIGS  # noqa: E402
from core.s2l import S2L, S2LConfig  # noqa: E402
from core.training import (Budget, Checkpointer, FeatureCache, RunState, add_run_arguments,  # noqa: E402
                           corpus_description, end_epoch, export_best, run_command,
                           seed_everything)


# The paper's training set-up (the defaults below; the model card cites them from here).
PAPER_LR = 1e-4
PAPER_EPOCHS = 300
NON_SPEECH_SOUNDS = 120    # 4 s each, the four kinds in turn (--non-speech)


def load_split(corpus: Corpus, split: str, cache: FeatureCache, max_hours: float | None, seed: int,
               max_utterances: int | None = None, codec: str | None = None) -> tuple[list, list | None]:
    """(features, landmark displacements, meta, codes) per utterance, features cached on disk; and
    with ``codec``, each utterance's features after that codec's round trip (same order; else None),
    read in the same pass over the corpus."""
    metas = corpus.metadata(split)
    # --max-hours keeps the first utterances in shard order (shards rotate voices and engines, so a
    # prefix spans them; and a feature cache filled in shard order is used fully). Validation
    # utterances are a seeded sample.
    order = np.arange(len(metas)) if max_hours is not None else np.random.default_rng(seed).permutation(len(metas))
    keep, hours = set(), 0.0
    for i in order:
        if (max_hours is not None and hours >= max_hours) or (max_utterances and len(keep) >= max_utterances):
            break
        keep.add(metas[i]["utt_id"])
        hours += metas[i]["duration"] / 3600
    items, coded = [], []
    for utt in corpus.utterances(split):
        if utt.meta["utt_id"] not in keep:
            continue
        items.append((cache.get(utt.meta["utt_id"], utt.audio), utt.landmark_disp.astype(np.float32), utt.meta,
                      utt.codes))
        if codec:
            coded.append(cache.get(utt.meta["utt_id"], utt.audio, codec=codec))
        if len(items) % 200 == 0:
            print(f"  {split}: features for {len(items)}/{len(keep)} utterances", flush=True)
    # corpus order must not depend on shard timing
    order = sorted(range(len(items)), key=lambda i: items[i][2]["utt_id"])
    return [items[i] for i in order], ([coded[i] for i in order] if codec else None)


def grid_step(fps: float, rate: float) -> int:
    """Smallest frame step k with k * rate / fps whole, so crops start on an encoder frame."""
    for k in range(1, 1001):
        if abs(k * rate / fps - round(k * rate / fps)) < 1e-6:
            return k
    return 1


def make_batches(items, crop_frames: int, fps: float, rate: float, batch: int, rng) -> list:
    step = grid_step(fps, rate)
    enc_len = int(np.ceil(crop_frames * rate / fps)) + 1
    usable = [it for it in items if len(it[1]) >= crop_frames and len(it[0]) >= enc_len]
    order = rng.permutation(len(usable))
    batches = []
    for b in range(0, len(order) - batch + 1, batch):
        feats, targets, codes = [], [], []
        for i in order[b:b + batch]:
            f, y, _, code = usable[i]
            last = min(len(y) - crop_frames, int((len(f) - enc_len) * fps / rate))
            k0 = int(rng.integers(0, last // step + 1)) * step
            e0 = int(round(k0 * rate / fps))
            feats.append(f[e0:e0 + enc_len].astype(np.float32))
            targets.append(y[k0:k0 + crop_frames])
            codes.append(code[k0:k0 + crop_frames])
        batches.append((torch.from_numpy(np.stack(feats)), torch.from_numpy(np.stack(targets)),
                        torch.from_numpy(np.stack(codes))))
    return batches


def run_s2l(model, feats, num_frames: int, fps: float, code):
    """(displacements, seal logits or None) of a batch."""
    code = code if model.config.condition_dim else None
    if model.config.seal_head:
        return model(feats, num_frames, fps, 0.0, code, return_seal=True)
    return model(feats, num_frames, fps, 0.0, code), None


@torch.no_grad()
def validate(model, items, fps: float, lambdas: dict) -> dict:
    model.eval()
    total, preds, targets, hits = [], [], [], np.zeros(3)
    for f, y, _, code in items:
        target = torch.from_numpy(y)[None]
        pred, seal = run_s2l(model, torch.from_numpy(f.astype(np.float32))[None], len(y), fps,
                             torch.from_numpy(code)[None])
        loss, _ = losses.s2l_loss(pred, target, seal_logits=seal, **lambdas)
        total.append(float(loss))
        preds.append(pred[0].numpy())
        targets.append(y)
        if seal is not None:   # the head's seals (p > 0.5) against the target's: true, predicted, actual
            said = (seal[0] > 0).numpy()
            actual = losses.seal_labels(target, unit=1.0)[0].numpy() > 0      # target in metres
            hits += [(said & actual).sum(), said.sum(), actual.sum()]
    m = metrics.evaluate(np.concatenate(preds), np.concatenate(targets))
    out = {"loss": float(np.mean(total)), "LE_mm": m["LE"] * 1000, "DE_mm": m["DE"] * 1000, "DAE_deg": m["DAE"]}
    if model.config.seal_head:
        out.update(seal_precision=float(hits[0] / max(hits[1], 1)), seal_recall=float(hits[0] / max(hits[2], 1)))
    return out


def feature_statistics(items) -> tuple[np.ndarray, np.ndarray]:
    stacked = np.concatenate([it[0].astype(np.float64) for it in items])
    return stacked.mean(0).astype(np.float32), np.maximum(stacked.std(0), 1e-3).astype(np.float32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--encoder", default="hama", choices=sorted(ENCODER_CONFIGS))
    ap.add_argument("--encoder-dir", help="wav2vec2: local model folder")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--cache-dir", help="feature cache (default: data/feature_cache)")
    ap.add_argument("--export", help="weights folder to write the best network into")
    ap.add_argument("--export-name", help="network name in the manifest (default s2l_<encoder>)")
    ap.add_argument("--epochs", type=int, default=PAPER_EPOCHS)
    ap.add_argument("--lr", type=float, default=PAPER_LR)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop-seconds", type=float, default=3.0)
    ap.add_argument("--no-cosine", action="store_true", help="ablation: drop the cosine loss")
    ap.add_argument("--gap-loss", type=float, default=1.0,
                    help="weight of the lip-gap term that keeps openings and closures (0: the paper's objective)")
    ap.add_argument("--gap-closure-weight", type=float, default=4.0,
                    help="lip-gap term: weight of frames whose target lips are closed (gap < 0.5 mm)")
    ap.add_argument("--gap-brief-closure-weight", type=float,
                    help="lip-gap term: weight of closures inside speech (closed target frames within 5 frames of "
                         "a target gap over 2 mm: the p/b/m seals); default: --gap-closure-weight")
    ap.add_argument("--gap-seal-weight", type=float, default=0.0,
                    help="lip-gap term: weight of the seal term (a p/b/m seal the prediction does not reach within "
                         "one frame of it; core.losses.lip_gap_loss)")
    ap.add_argument("--gap-false-closure-weight", type=float, default=0.0,
                    help="lip-gap term: weight of the false-closure term (the predicted gap under 2 mm where the "
                         "target holds the lips over 2 mm apart for three frames; core.losses.lip_gap_loss)")
    ap.add_argument("--gap-open-weight", type=float, default=1.0,
                    help="lip-gap term: weight of frames whose target gap is over --gap-open-above "
                         "(the open vowels' peaks, which a BiLSTM flattens on unfamiliar voices)")
    ap.add_argument("--gap-open-above", type=float, default=6.0, help="mm; see --gap-open-weight")
    ap.add_argument("--feature-shrink", type=float, default=1.0,
                    help="augmentation: each crop's features are drawn towards the training mean by a factor "
                         "in [this, 1] (real recordings' hama features vary ~16%% less than the synthetic "
                         "voices'; 1: off)")
    ap.add_argument("--feature-tilt", type=float, default=0.0,
                    help="augmentation for spectral features (mel): each crop gets a random level and "
                         "spectral tilt across channels, this many training standard deviations (sd); real "
                         "microphones sit ~0.5 sd from the synthetic voices' mean; 0: off")
    ap.add_argument("--feature-warp", type=float, default=0.0,
                    help="augmentation for mel: each crop's frequency axis scaled by a factor in [1 - this, 1 + this] "
                         "(vocal tract length perturbation: a new speaker per crop); 0: off")
    ap.add_argument("--non-speech", type=float, default=0.0,
                    help="augmentation: this share of crops is replaced by steady non-speech sounds (tones, modem "
                         "carriers, hum, noise: core/corpus/non_speech.py) with the rest pose as target; 0: off")
    ap.add_argument("--codec-share", type=float, default=0.0,
                    help="augmentation: each epoch, this share of training utterances is heard through a GSM "
                         "06.10 round trip (core.corpus.augment.gsm: many telephone prompts are GSM-coded); 0: off")
    ap.add_argument("--frontend-channels", type=int,
                    help="trainable front end's width (default: the encoder's, core.pipeline.ENCODER_CONFIGS)")
    ap.add_argument("--frontend-layers", type=int, help="trainable front end's conv layers (default: 2)")
    ap.add_argument("--no-condition", action="store_true",
                    help="train without the emotion/style code (the paper's S2L)")
    ap.add_argument("--seal-head", type=float, default=0.0,
                    help="weight of the seal head's loss: S2L also says, every frame, how likely the lips are "
                         "sealed for a p/b/m (core.losses.seal_detection_loss; core.lip_seal closes them at "
                         "inference); 0: no head")
    ap.add_argument("--seal-positive-weight", type=float, default=10.0,
                    help="seal head: weight of the seal frames against the others in its cross-entropy")
    ap.add_argument("--seal-head-lr-scale", type=float, default=30.0,
                    help="seal head: its learning rate is --lr times this (it starts from nothing)")
    ap.add_argument("--seal-head-only", action="store_true",
                    help="train the seal head alone on a frozen --init network (its landmarks stay as they were)")
    ap.add_argument("--init", help="weights folder whose s2l_<encoder> starts the run (fine-tuning on a "
                                   "re-taught corpus instead of training from scratch)")
    ap.add_argument("--max-hours", type=float, help="use at most this much training audio")
    ap.add_argument("--max-val", type=int, default=150, help="validation utterances")
    add_run_arguments(ap)
    args = ap.parse_args(argv)
    if args.seal_head_only and not (args.init and args.seal_head > 0):
        ap.error("--seal-head-only trains a new seal head on an --init network: give both and --seal-head")
    if args.feature_warp > 0 and args.encoder != "mel":
        ap.error("--feature-warp scales a frequency axis: only the mel encoder's features have one")
    for flag, share in (("--non-speech", args.non_speech), ("--codec-share", args.codec_share)):
        if not 0.0 <= share <= 1.0:
            ap.error(f"{flag} is a share of the training crops or utterances: give 0 to 1, not {share:g}")

    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    corpus = Corpus(args.corpus)
    fps = corpus.fps  # trained at the corpus' rate; S2L resamples to any rate at inference
    cache = FeatureCache(args.cache_dir or ROOT / "data" / "feature_cache", args.encoder,
                         {"model_dir": args.encoder_dir} if args.encoder_dir else None)
    t_start = time.time()
    print(f"loading features ({args.encoder}) ...", flush=True)
    train, coded = load_split(corpus, "train", cache, args.max_hours, args.seed,
                              codec="gsm" if args.codec_share > 0 else None)
    val, _ = load_split(corpus, "val", cache, None, args.seed, args.max_val)
    if not train or not val:
        raise SystemExit("The corpus has no train or no val utterances.")
    hours = sum(it[2]["duration"] for it in train) / 3600
    print(f"{len(train)} train utterances ({hours:.2f} h), {len(val)} val; features in {time.time() - t_start:.0f} s",
          flush=True)

    front = {k: v for k, v in (("frontend_channels", args.frontend_channels),
                               ("frontend_layers", args.frontend_layers)) if v is not None}
    cfg = S2LConfig(**{**ENCODER_CONFIGS[args.encoder], **front, "input_dim": int(train[0][0].shape[1]),
                       "condition_dim": 0 if args.no_condition else CODE_DIM, "seal_head": args.seal_head > 0})
    model = S2L(cfg)
    mean, std = feature_statistics(train)
    model.feature_mean.copy_(torch.from_numpy(mean))
    model.feature_std.copy_(torch.from_numpy(std))
    if args.init and not args.resume:
        from core import weights
        init_cfg, init_state, _ = weights.load_network(Path(args.init), args.export_name or f"s2l_{args.encoder}", "s2l")
        # a seal head may be added to a network trained without one (it starts at "rarely")
        if S2LConfig(**{**init_cfg, "seal_head": cfg.seal_head}) != cfg or (init_cfg.get("seal_head") and not cfg.seal_head):
            raise SystemExit(f"--init {args.init}: its S2L config {init_cfg} differs from this run's {cfg.to_dict()}")
        missing, _ = model.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in init_state.items()},
                                           strict=False)
        if any(not k.startswith("seal.") for k in missing):
            raise SystemExit(f"--init {args.init}: missing {missing}")
    # a new seal head starts from nothing: it learns at a higher rate than the fine-tuned rest
    head = [p for n, p in model.named_parameters() if n.startswith("seal.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("seal.")]
    if args.seal_head_only:    # the --init network stays exactly as it was; only its new head learns
        for p in rest:
            p.requires_grad_(False)
    optimizer = torch.optim.Adam([*([] if args.seal_head_only else [{"params": rest}]),
                                  *([{"params": head, "lr": args.lr * args.seal_head_lr_scale}] if head else [])],
                                 lr=args.lr)
    gap_weights = {"closure_weight": args.gap_closure_weight, "open_weight": args.gap_open_weight,
                   "open_above": args.gap_open_above,
                   **({"brief_closure_weight": args.gap_brief_closure_weight}
                      if args.gap_brief_closure_weight is not None else {}),
                   **({"seal_weight": args.gap_seal_weight} if args.gap_seal_weight else {}),
                   **({"false_closure_weight": args.gap_false_closure_weight} if args.gap_false_closure_weight else {})}
    lambdas = {"unit": losses.LOSS_UNITS[args.loss_unit], "gap": args.gap_loss, "gap_weights": gap_weights,
               **({"cosine": 0.0} if args.no_cosine else {}),
               **({"seal": args.seal_head, "seal_positive_weight": args.seal_positive_weight} if args.seal_head else {})}
    augment = FeatureAugment(args.feature_shrink, args.feature_tilt, args.feature_warp, args.non_speech)
    # the non-speech sounds' features, through the same cache and loudness normalisation as speech
    bank = [cache.get(f"non_speech_{i:03d}", a) for i, a in enumerate(non_speech.bank(NON_SPEECH_SOUNDS, 4.0, args.seed))] \
        if args.non_speech > 0 else None
    ckpt = Checkpointer(args.run_dir)
    run_config = {**vars(args), "s2l": cfg.to_dict(), "train_hours": hours}
    state = ckpt.resume(model, optimizer) if args.resume else None
    if state is None:
        state = RunState()
    elif state.finished:
        print("run already stopped early; exporting")
    state.commands.append(run_command())
    budget = Budget(args.budget_minutes)
    rng = np.random.default_rng(args.seed + state.epoch)
    crop = int(round(args.crop_seconds * fps))

    while not state.finished and state.epoch < args.epochs and not budget.exhausted():
        t0 = time.time()
        model.train()
        rng = np.random.default_rng(args.seed * 1000 + state.epoch)
        epoch_losses = []
        heard = train
        if coded:   # (a generator of its own: the crops stay those of a run without the codec)
            use = np.random.default_rng([args.seed, state.epoch, 1]).random(len(train)) < args.codec_share
            heard = [(c, *it[1:]) if u else it for it, c, u in zip(train, coded, use)]
        for feats, target, code in make_batches(heard, crop, fps, cfg.encoder_rate, args.batch, rng):
            feats, target, code = augment(feats, target, code, model.feature_mean, model.feature_std, rng, bank)
            pred, seal = run_s2l(model, feats, crop, fps, code)
            loss, _ = losses.s2l_loss(pred, target, seal_logits=seal, **lambdas)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epoch_losses.append(float(loss.detach()))
            state.step += 1
        val_metrics = validate(model, val, fps, lambdas)
        end_epoch(state, ckpt, model, optimizer, run_config, epoch_losses, val_metrics, t0, args.patience)
    if budget.exhausted() and not state.finished:
        print("time budget used: checkpoint saved, continue with --resume")

    if args.export and ckpt.best.exists():
        export_best(ckpt, state, args, args.export_name or f"s2l_{args.encoder}", "s2l", cfg.to_dict(),
                    front_end=args.encoder,
                    training_data=corpus_description(corpus) + f"; {hours:.2f} h used for training",
                    extra={"cosine_loss": not args.no_cosine, "gap_loss": args.gap_loss,
                           "gap_weights": gap_weights, "feature_shrink": args.feature_shrink,
                           "feature_tilt": args.feature_tilt, "feature_warp": args.feature_warp,
                           "non_speech": args.non_speech, "codec_share": args.codec_share,
                           "seal_head": args.seal_head,
                           **({"seal_positive_weight": args.seal_positive_weight} if args.seal_head else {}),
                           "seal_head_only": args.seal_head_only,
                           "initialised_from": args.init or "random",
                           "condition": [] if args.no_condition else list(CODE_NAMES)})
    print(json.dumps({"epochs": state.epoch, "best_epoch": state.best_epoch, "best_val": state.best_val}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
