"""What both training tools share: seeding, encoder-feature caching, checkpoints, early stopping.

CPU-friendly by design (2 cores, no GPU): encoder features are computed once per corpus and
encoder and cached on disk; a run checkpoints every epoch and after a wall-time budget, and
``--resume`` continues exactly where it stopped (model, optimiser, RNG states, loss log).
"""

from __future__ import annotations

import json
import os
import random
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import audio as audio_io
from .encoders import get_encoder


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class FeatureCache:
    """Encoder features of every utterance, computed once: ``cache/<encoder>/<utt>_<crc32>.npy``.

    Audio goes through the same loudness normalisation as at inference.
    """

    def __init__(self, cache_dir, encoder: str, encoder_options: dict | None = None):
        self.dir = Path(cache_dir) / encoder
        self.dir.mkdir(parents=True, exist_ok=True)
        self.encoder_name = encoder
        self._options = encoder_options or {}
        self._encoder = None

    def get(self, utt_id: str, audio16k: np.ndarray, codec: str | None = None) -> np.ndarray:
        """``codec``: the features of the audio after that codec's round trip
        (core.corpus.augment.CODECS), cached apart."""
        # The audio's checksum is part of the key: a regenerated corpus never reuses stale features.
        digest = zlib.crc32(np.ascontiguousarray(audio16k, np.float32).tobytes())
        path = self.dir / f"{utt_id}_{digest:08x}{'_' + codec if codec else ''}.npy"
        if path.exists():
            return np.load(path)
        if self._encoder is None:
            self._encoder = get_encoder(self.encoder_name, **self._options)
        if codec:
            from .corpus.augment import CODECS
            audio16k = CODECS[codec](audio16k)
        feats = self._encoder.features(audio_io.normalise_loudness(audio16k)).astype(np.float16)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")  # unique: parallel cachers
        np.save(tmp, feats)
        tmp.replace(path)
        return feats


@dataclass
class RunState:
    epoch: int = 0
    step: int = 0
    best_val: float = float("inf")
    best_epoch: int = -1
    bad_epochs: int = 0
    wall_seconds: float = 0.0
    log: list = field(default_factory=list)
    finished: bool = False
    commands: list = field(default_factory=list)  # every invocation of the run (start, resumes, export)


class Checkpointer:
    """``run_dir/checkpoint.pt`` (latest, for resume) and ``run_dir/best.pt`` (best validation)."""

    def __init__(self, run_dir):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def latest(self) -> Path:
        return self.dir / "checkpoint.pt"

    @property
    def best(self) -> Path:
        return self.dir / "best.pt"

    def save(self, model, optimizer, state: RunState, config: dict, best: bool = False) -> None:
        blob = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "state": state.__dict__,
            "config": config,
            "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
        }
        tmp = self.latest.with_suffix(".tmp")
        torch.save(blob, tmp)
        tmp.replace(self.latest)
        if best:
            torch.save({"model": model.state_dict(), "config": config, "epoch": state.epoch}, self.best)
        (self.dir / "log.json").write_text(json.dumps(state.log, indent=1))

    def resume(self, model, optimizer) -> RunState | None:
        if not self.latest.exists():
            return None
        blob = torch.load(self.latest, weights_only=False)
        model.load_state_dict(blob["model"])
        optimizer.load_state_dict(blob["optimizer"])
        random.setstate(blob["rng"]["python"])
        np.random.set_state(blob["rng"]["numpy"])
        torch.set_rng_state(blob["rng"]["torch"])
        return RunState(**blob["state"])


class Budget:
    """Wall-clock budget for one session: stop cleanly (checkpointed) when it runs out."""

    def __init__(self, minutes: float | None):
        # None: no limit; 0: no training at all (``--resume --budget-minutes 0 --export`` only exports).
        self.deadline = None if minutes is None else time.monotonic() + 60.0 * minutes

    def exhausted(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline


def early_stopping_update(state: RunState, val_loss: float, patience: int) -> bool:
    """Record a validation loss; True when it is the best so far. Sets ``finished`` on patience."""
    improved = val_loss < state.best_val
    if improved:
        state.best_val, state.best_epoch, state.bad_epochs = val_loss, state.epoch, 0
    else:
        state.bad_epochs += 1
        if state.bad_epochs >= patience:
            state.finished = True
    return improved


def end_epoch(state: RunState, ckpt: Checkpointer, model, optimizer, run_config: dict, train_losses: list,
              val_metrics: dict, started: float, patience: int) -> bool:
    """Book-keeping after each epoch: early stopping, log, checkpoint, one progress line."""
    seconds = time.time() - started
    state.epoch += 1
    state.wall_seconds += seconds
    improved = early_stopping_update(state, val_metrics["loss"], patience)
    state.log.append({"epoch": state.epoch, "train_loss": float(np.mean(train_losses)), **val_metrics,
                      "seconds": seconds})
    ckpt.save(model, optimizer, state, run_config, best=improved)
    print(f"epoch {state.epoch:3d}  train {np.mean(train_losses):.3e}  val {val_metrics['loss']:.3e}  "
          f"LE {val_metrics['LE_mm']:.2f} mm  DE {val_metrics['DE_mm']:.3f} mm  {'*' if improved else ' '} "
          f"{seconds:.0f} s", flush=True)
    return improved


def add_run_arguments(ap) -> None:
    """Options every training tool shares: loss unit, early stopping, time budget, resume, seed, threads."""
    ap.add_argument("--loss-unit", choices=("mm", "m"), default="mm",
                    help="unit the losses see displacements in (core.losses explains the default)")
    ap.add_argument("--patience", type=int, default=10, help="epochs without improvement before stopping")
    ap.add_argument("--budget-minutes", type=float, help="stop (checkpointed) after this wall time")
    ap.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)


def export_best(ckpt: Checkpointer, state: RunState, args, name: str, kind: str, config: dict, *,
                front_end: str, training_data: str, extra: dict | None = None) -> None:
    """Write the best checkpoint's network to ``args.export`` with what the run recorded."""
    from . import weights
    best = torch.load(ckpt.best, weights_only=False)
    best_log = next(e for e in state.log if e["epoch"] == best["epoch"])
    # The run's per-epoch log goes beside the weights (small: a few numbers per epoch) and the
    # manifest keeps its digest, so every figure about the training can be traced to it.
    log_rel = f"logs/{name}.json"
    log_path = Path(args.export) / log_rel
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(json.dumps({"network": name, "commands": state.commands, "best_epoch": best["epoch"],
                                    "epochs_run": state.epoch, "early_stopped": state.finished,
                                    "epochs": state.log}, indent=1) + "\n", encoding="utf-8")
    weights.save_network(
        args.export, name, kind, config, {k: v.numpy() for k, v in best["model"].items()},
        front_end=front_end, trained=True, training_data=training_data,
        extra={"epochs": best["epoch"], "epochs_run": state.epoch, "steps": state.step,
               "wall_minutes": round(state.wall_seconds / 60, 1), "validation": best_log, "lr": args.lr,
               "seed": args.seed, "loss_unit": args.loss_unit, "early_stopped": state.finished,
               "log": log_rel, "log_sha256": weights.file_sha256(log_path), **(extra or {})},
    )
    print(f"exported {name} (epoch {best['epoch']}) to {args.export}")


def run_command() -> str:
    """The command line of this run as the model card shows it (paths inside the project relative)."""
    import shlex
    import sys
    root = str(Path(__file__).resolve().parent.parent) + os.sep
    argv = [a.replace(root, "") for a in sys.argv]
    return "python " + " ".join(shlex.quote(a) for a in argv)


def corpus_description(corpus) -> str:
    """One line for the weights manifest: what the network was trained on."""
    s = corpus.manifest.get("stats", {})
    kind = corpus.manifest.get("kind", "synthetic")
    return (f"{kind} corpus at {corpus.root.name}: {s.get('hours', '?')} h, {s.get('num_voices', '?')} voices, "
            f"{s.get('num_languages', '?')} languages (see weights/MODEL_CARD.md)")
