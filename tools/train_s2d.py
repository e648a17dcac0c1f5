"""Train S2D (68 landmark displacements -> 5023 vertex displacements) on a corpus.

Paper defaults: Adam lr 1e-3, loss 0.1 rec + 1e-4 cosine + 1 weighted (vertex weight
1 / distance to the nearest landmark). S2D needs no audio: training samples single frames
(landmark displacements, dense displacements) across all identities of the training split.
Dense targets are rebuilt on the fly from the corpus' coefficients, so memory stays small.
Checkpoints every epoch, ``--resume``, ``--budget-minutes`` and early stopping as in S2L.

    python tools/train_s2d.py --corpus data/corpus --run-dir runs/s2d --export weights/
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
from core.corpus.dataset import Corpus  # noqa: E402
from core.s2d import S2D, S2DConfig  # noqa: E402
from core.training import (Budget, Checkpointer, RunState, add_run_arguments,  # noqa: E402
                           corpus_description, end_epoch, export_best, run_command,
                           seed_everything)


class FramePool:
    """Every frame of a split as (identity, coefficients) or dense arrays; dense rebuilt per batch."""

    def __init__(self, corpus: Corpus, split: str, max_frames: int | None, seed: int):
        ids, coeffs, lmks, dense = [], [], [], []
        for utt in corpus.utterances(split):
            ids.append(np.full(utt.num_frames, utt.meta["identity"], np.int32))
            lmks.append(utt.landmark_disp.astype(np.float32))
            if utt.coeffs.size:
                coeffs.append(utt.coeffs.astype(np.float32))
            else:
                dense.append(utt.dense_disp().astype(np.float16))
        self.identity = np.concatenate(ids)
        self.landmarks = np.concatenate(lmks)
        self.coeffs = np.concatenate(coeffs) if coeffs else None
        self.dense = np.concatenate(dense) if dense else None
        self.basis = corpus.identities.basis.reshape(len(corpus.identities.names), -1, 5023 * 3)
        if max_frames and len(self.identity) > max_frames:
            keep = np.sort(np.random.default_rng(seed).choice(len(self.identity), max_frames, replace=False))
            self.identity, self.landmarks = self.identity[keep], self.landmarks[keep]
            self.coeffs = None if self.coeffs is None else self.coeffs[keep]
            self.dense = None if self.dense is None else self.dense[keep]

    def __len__(self) -> int:
        return len(self.identity)

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        if self.dense is not None:
            dense = self.dense[idx].astype(np.float32)
        else:
            dense = np.einsum("bk,bkv->bv", self.coeffs[idx], self.basis[self.identity[idx]]).reshape(-1, 5023, 3)
        return torch.from_numpy(self.landmarks[idx]), torch.from_numpy(dense.astype(np.float32))


@torch.no_grad()
def validate(model, pool: FramePool, weights_v, batch: int, unit: float) -> dict:
    model.eval()
    total, preds, targets = [], [], []
    for i in range(0, len(pool), batch):
        x, y = pool.batch(np.arange(i, min(len(pool), i + batch)))
        pred = model(x)
        loss, _ = losses.s2d_loss(pred, y, weights_v, unit=unit)
        total.append(float(loss) * len(x))
        preds.append(pred.numpy())
        targets.append(y.numpy())
    m = metrics.evaluate(np.concatenate(preds), np.concatenate(targets))
    return {"loss": float(np.sum(total) / len(pool)), "LE_mm": m["LE"] * 1000, "DE_mm": m["DE"] * 1000,
            "DAE_deg": m["DAE"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--export", help="weights folder to write the best network into")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--steps-per-epoch", type=int, default=200)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-train-frames", type=int, default=400_000)
    ap.add_argument("--max-val-frames", type=int, default=2000)
    ap.add_argument("--init", help="weights folder whose s2d starts the run (fine-tuning a shipped S2D "
                                   "on a re-taught corpus instead of training from scratch)")
    add_run_arguments(ap)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    corpus = Corpus(args.corpus)
    train = FramePool(corpus, "train", args.max_train_frames, args.seed)
    val = FramePool(corpus, "val", args.max_val_frames, args.seed + 1)
    print(f"{len(train)} train frames, {len(val)} val frames, {len(corpus.identities.names)} identities", flush=True)

    cfg = S2DConfig()
    model = S2D(cfg)
    if args.init and not args.resume:
        from core import weights
        init_cfg, init_state, _ = weights.load_network(Path(args.init), "s2d", "s2d")
        cfg = S2DConfig(**init_cfg)
        model = S2D(cfg)
        model.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in init_state.items()})
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    weights_v = torch.from_numpy(losses.vertex_weights())
    unit = losses.LOSS_UNITS[args.loss_unit]
    ckpt = Checkpointer(args.run_dir)
    run_config = {**vars(args), "s2d": cfg.to_dict()}
    state = (ckpt.resume(model, optimizer) if args.resume else None) or RunState()
    state.commands.append(run_command())
    budget = Budget(args.budget_minutes)

    while not state.finished and state.epoch < args.epochs and not budget.exhausted():
        t0 = time.time()
        model.train()
        rng = np.random.default_rng(args.seed * 1000 + state.epoch)
        epoch_losses = []
        for _ in range(args.steps_per_epoch):
            x, y = train.batch(rng.integers(0, len(train), args.batch))
            loss, _ = losses.s2d_loss(model(x), y, weights_v, unit=unit)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epoch_losses.append(float(loss.detach()))
            state.step += 1
        val_metrics = validate(model, val, weights_v, 64, unit)
        end_epoch(state, ckpt, model, optimizer, run_config, epoch_losses, val_metrics, t0, args.patience)
    if budget.exhausted() and not state.finished:
        print("time budget used: checkpoint saved, continue with --resume")

    if args.export and ckpt.best.exists():
        export_best(ckpt, state, args, "s2d", "s2d", cfg.to_dict(), front_end="none",
                    training_data=corpus_description(corpus),
                    extra={"initialised_from": "the previously shipped S2D" if args.init else "random"})
    print(json.dumps({"epochs": state.epoch, "best_epoch": state.best_epoch, "best_val": state.best_val}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
