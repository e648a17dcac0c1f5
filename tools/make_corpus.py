#!/usr/bin/env python3
"""Generate the synthetic 4D speech corpus (audio + phone spans + landmark/dense motion).

    python tools/make_corpus.py --out data/corpus --hours 10.5 --seed 0 --workers 1
    python tools/make_corpus.py --out /tmp/tiny --hours 0.01 --shard-seconds 20   # tiny (tests)

Shard k's content depends only on (seed, k): reruns resume (finished shards are kept) and give
the same corpus for any --workers. Shards are made in index order until the first N shards hold
--hours of audio; shards past N made by parallel workers are removed. Writes manifest.json with
per-voice / language / engine / split statistics. Needs the TTS engines: tools/setup_corpus.sh.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.corpus import generate  # noqa: E402


def _fmt(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"


def fill(cfg: generate.CorpusConfig, kind: str, target: float, workers: int, voices: list, prepared,
         report, log) -> int:
    """Make shards ``kind``_00000, 00001, ... in index order (finished ones are kept) until an
    unbroken prefix of them holds ``target`` seconds of audio; remove the ones past it (made by
    parallel workers). ``report(k, summary, prefix_seconds)`` follows each shard. Returns the
    prefix's length."""
    done = {}
    k = 0
    while (s := generate.existing_shard(cfg, k, kind)) is not None:
        done[k] = s
        k += 1

    def prefix():
        total, n = 0.0, 0
        while n in done and total < target:
            total += done[n]["seconds"]
            n += 1
        return n, total

    if done:
        log(f"resuming: {len(done)} finished shards ({kind}_*), {prefix()[1] / 3600:.3f} h")
    # one fresh process per shard (forkserver: clean, fast): see generate.run_shard_isolated
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["core.corpus.generate"])
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=ctx, max_tasks_per_child=1) as pool:
        futures = {}
        while True:
            # stop submitting once what is finished plus what is in flight reaches the target
            while prefix()[1] + len(futures) * cfg.shard_seconds < target and len(futures) < max(1, workers):
                futures[pool.submit(generate.run_shard_isolated, cfg, voices, k, prepared, kind)] = k
                k += 1
            if not futures:
                break
            finished, _ = wait(futures, return_when=FIRST_COMPLETED)
            for f in finished:
                j, s = f.result()
                del futures[f]
                done[j] = s
                report(j, s, prefix()[1])
    n = prefix()[0]
    for stem in sorted((Path(cfg.out) / "shards").glob(f"{kind}_*.npz")):
        if int(stem.stem.split("_")[1]) >= n:
            stem.unlink()
            stem.with_suffix(".json").unlink(missing_ok=True)
    return n


def run(cfg: generate.CorpusConfig, workers: int = 1, log=None) -> dict:
    log = log or (lambda msg: print(msg, flush=True))
    out = Path(cfg.out)
    voices = generate.voice_catalogue(cfg)
    if cfg.extra_real_hours > 0 and not any(v.extra for v in voices):   # before hours of main shards
        raise SystemExit(f"error: --extra-real-hours: no recordings of {[n for n, _, _ in generate.EXTRA_REAL_VOICES]} "
                         f"under {cfg.extra_real_root} (bash tools/setup_corpus.sh --recorded installs them)")
    (out / "shards").mkdir(parents=True, exist_ok=True)
    generate.identity_table(cfg).save(out / "identities.npz")
    prepared = generate.prepared_identities(cfg)
    t0 = time.time()
    made_seconds = compute = 0.0

    def made(s):
        nonlocal made_seconds, compute
        made_seconds += s["seconds"]
        compute += s["compute_seconds"]

    def report(k, s, total):
        made(s)
        target = cfg.hours * 3600
        frac = min(total / target, 1.0) if target > 0 else 1.0
        el = time.time() - t0
        eta = el / max(made_seconds, 1e-9) * max(target - total, 0)
        bar = "#" * int(frac * 30)
        log(f"[{bar:<30}] {100 * frac:5.1f}% {total / 3600:6.3f}/{cfg.hours:.3f} h  elapsed {_fmt(el)}  "
            f"eta {_fmt(eta)}  shard {k:05d} {s['voice']} ({s['split']}) {s['seconds']:.0f}s audio "
            f"in {s['compute_seconds']:.1f}s")

    def report_extra(k, s, total):
        made(s)
        log(f"extra real voices: {total / 3600:.3f}/{cfg.extra_real_hours:.3f} h  shard real_{k:05d} "
            f"{s['voice']} {s['seconds']:.0f}s audio in {s['compute_seconds']:.1f}s")

    names = [f"shard_{i:05d}" for i in range(fill(cfg, "shard", cfg.hours * 3600, workers, voices, prepared,
                                                   report, log))]
    if cfg.extra_real_hours > 0:
        names += [f"real_{i:05d}" for i in range(fill(cfg, "real", cfg.extra_real_hours * 3600, workers, voices,
                                                       prepared, report_extra, log))]
    wall = time.time() - t0
    old = out / "manifest.json"        # a re-teaching record stays true of the shards it re-taught
    kept = {k: v for k, v in json.loads(old.read_text()).items() if k == "retaught"} if old.exists() else {}
    manifest = generate.write_manifest(cfg, voices, names, extra={
        **kept,
        "generation": {"wall_seconds_this_run": round(wall, 1),
                       "compute_seconds_this_run": round(compute, 1),
                       "audio_seconds_this_run": round(made_seconds, 1),
                       "realtime_factor_this_run": round(compute / max(made_seconds, 1e-9), 4)}})
    st = manifest["stats"]
    log(f"done: {st['hours']:.3f} h, {st['utterances']} utterances, {st['num_voices']} voices, "
        f"{st['num_languages']} languages -> {out / 'manifest.json'}")
    return manifest


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/corpus", help="output folder (default data/corpus, git-ignored)")
    ap.add_argument("--hours", type=float, default=10.5, help="hours of audio to reach (default 10.5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    ap.add_argument("--fps", type=float, default=30.0, help="motion frame rate stored (default 30)")
    ap.add_argument("--shard-seconds", type=float, default=180.0, help="audio per shard (default 180)")
    ap.add_argument("--engines", default="espeak,flite,festival,kokoro,recorded",
                    help="comma list (default all five; recorded = real voices from --recordings)")
    ap.add_argument("--recordings", default=generate.RECORDINGS_ROOT,
                    help="folder of recorded voices, one subfolder each (default: Debian's asterisk sounds)")
    ap.add_argument("--extra-real-hours", type=float, default=0.0,
                    help="also this many hours of more real voices (Fish Fillets NG's Czech and Dutch "
                         "actors; core.corpus.generate.EXTRA_REAL_VOICES) in extra shards real_NNNNN")
    ap.add_argument("--extra-real-root", default=generate.EXTRA_REAL_ROOT, help="where those recordings are")
    ap.add_argument("--no-augment", action="store_true", help="clean audio only")
    ap.add_argument("--report", metavar="PATH", help="also write the corpus statistics as Markdown to PATH")
    ap.add_argument("--report-only", action="store_true", help="only write --report from an existing corpus")
    a = ap.parse_args(argv)
    cfg = generate.CorpusConfig(out=a.out, hours=a.hours, seed=a.seed, fps=a.fps, shard_seconds=a.shard_seconds,
                                engines=tuple(e.strip() for e in a.engines.split(",") if e.strip()),
                                recordings_root=a.recordings, extra_real_hours=a.extra_real_hours,
                                extra_real_root=a.extra_real_root,
                                augment=not a.no_augment)
    if not a.report_only:
        run(cfg, workers=a.workers)
    if a.report:
        Path(a.report).write_text(generate.report_markdown(cfg.out))
        print(f"wrote {a.report}")


if __name__ == "__main__":
    main()
