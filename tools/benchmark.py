"""Inference speed and memory of the core pipeline, stage by stage, with the machine's load.

For each back end (numpy, torch), encoder (hama, mel) and frame rate (30, 60) it runs, on the
bundled sample speech looped to ``--seconds`` and given at ``--input-rate`` (22.05 kHz by
default, so resampling counts as it does for a typical WAV), every stage on its own:

    resample (load_audio), loudness, encoder, S2L networks, S2D, end to end (``animate``)

and reports seconds of audio per second of compute (x real time) for each, the median of
``--repeats`` warm runs, plus the process's CPU time (wall time on a busy shared machine
mostly measures the other jobs), the peak resident memory and /proc/loadavg before and after.
A last run streams a ``--long-minutes`` clip end to end (numpy + hama) for bounded memory.
Each measurement runs in its own process so peaks do not mix.

It also reports how close the fast paths are to their references on this clip, with the
shipped weights: hama's numpy engine against hama's native engine (posteriors, landmarks and
vertex displacements end to end) and the regrouped S2D against the layer-by-layer network.

    python tools/benchmark.py                      # writes docs/benchmarks/core.json
    python tools/benchmark.py --seconds 20 --long-minutes 2 --repeats 1 --out /tmp/bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _peak_rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _loadavg():
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def _clip(seconds: float, rate: int):
    """The sample speech looped to ``seconds``, at ``rate`` Hz (as a WAV at that rate would be)."""
    import numpy as np
    from core import audio
    speech = audio.load_audio(ROOT / "core" / "assets" / "audio" / "sample_speech.wav")
    clip = np.resize(speech, int(seconds * audio.SAMPLE_RATE))
    return audio.resample(clip, audio.SAMPLE_RATE, rate) if rate != audio.SAMPLE_RATE else clip


def _timed(fn, repeats: int):
    """(result, median wall s, median CPU s) over ``repeats`` runs."""
    import numpy as np
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        result = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return result, float(np.median(walls)), float(np.median(cpus))


def measure(backend: str, encoder: str, fps: float, seconds: float, rate: int, repeats: int, stream_only: bool) -> dict:
    from core import audio, flame
    from core.pipeline import Animator

    animator = Animator.load(encoder=encoder, backend=backend, allow_random=True)
    clip = _clip(seconds, rate)
    neutral = flame.load_topology().template
    result = {"backend": backend, "encoder": encoder, "fps": fps, "audio_seconds": seconds, "input_rate": rate,
              "repeats": repeats, "weights": animator.describe(), "s2d_threads": getattr(animator.s2d, "threads", 1),
              "loadavg_before": _loadavg()}
    animator.animate((clip[:rate], rate), neutral, fps)  # warm: first calls allocate and load
    if stream_only:
        t0, c0 = time.perf_counter(), time.process_time()
        frames = sum(len(block) for _, block in animator.stream((clip, rate), neutral, fps))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        result.update(frames=frames, end_to_end=_rates(seconds, wall, cpu))
    else:
        samples, w_res, c_res = _timed(lambda: audio.load_audio(clip, rate), repeats)
        samples, w_loud, c_loud = _timed(lambda: audio.normalise_loudness(samples), repeats)
        features, w_enc, c_enc = _timed(lambda: animator.encoder.features(samples), repeats)
        lmk, w_s2l, c_s2l = _timed(lambda: animator.landmark_displacements(samples, fps, features=features), repeats)

        def s2d():
            for i in range(0, len(lmk), animator.s2d_batch):
                animator.s2d(lmk[i:i + animator.s2d_batch])
        _, w_s2d, c_s2d = _timed(s2d, repeats)
        anim, w_all, c_all = _timed(lambda: animator.animate((clip, rate), neutral, fps), repeats)
        result.update(
            frames=anim.num_frames,
            stages={"resample": _rates(seconds, w_res, c_res), "loudness": _rates(seconds, w_loud, c_loud),
                    "encoder": _rates(seconds, w_enc, c_enc), "s2l_networks": _rates(seconds, w_s2l, c_s2l),
                    "s2d": _rates(seconds, w_s2d, c_s2d)},
            end_to_end=_rates(seconds, w_all, c_all))
    result["loadavg_after"] = _loadavg()
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


def _rates(seconds: float, wall: float, cpu: float) -> dict:
    return {"wall_s": wall, "cpu_s": cpu, "x_realtime": seconds / wall, "x_realtime_cpu": seconds / max(cpu, 1e-9)}


def parity(seconds: float) -> dict:
    """Fast paths against their references on this clip, with the shipped weights."""
    import numpy as np
    import torch
    from core import audio, flame, weights
    from core.encoders import get_encoder
    from core.errors import EncoderUnavailable
    from core.numpy_runtime import NumpyS2D
    from core.pipeline import Animator
    from core.s2d import S2D, S2DConfig

    out = {"audio_seconds": seconds}
    directory = weights.DEFAULT_DIR
    manifest = weights.read_manifest(directory)
    samples = audio.normalise_loudness(_clip(seconds, audio.SAMPLE_RATE))
    cfg, state, _ = weights.load_network(directory, "s2d", "s2d", manifest)
    reference = S2D(S2DConfig(**cfg)).eval()
    reference.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in state.items()})
    animator = Animator.load(encoder="hama")
    lmk = animator.landmark_displacements(samples, 30.0)
    with torch.no_grad():
        ref = reference(torch.from_numpy(lmk)).numpy()
    ours = np.concatenate([NumpyS2D(cfg, state)(lmk[i:i + 64]) for i in range(0, len(lmk), 64)])
    out["s2d_regrouped_vs_layer_by_layer"] = {"max_abs_m": float(np.abs(ours - ref).max()),
                                              "max_motion_m": float(np.abs(ref).max())}
    try:
        native = get_encoder("hama", engine="native")
    except EncoderUnavailable as exc:
        out["hama_numpy_vs_native"] = f"not measured: {exc}"
        return out
    a, b = animator.encoder.features(samples), native.features(samples)
    neutral = flame.load_topology().template
    other = Animator.load(encoder="hama")
    other.encoder = native
    da = animator.animate((samples, audio.SAMPLE_RATE), neutral, 30.0).displacements
    db = other.animate((samples, audio.SAMPLE_RATE), neutral, 30.0).displacements
    lb = other.landmark_displacements(samples, 30.0)
    out["hama_numpy_vs_native"] = {
        "log_posterior_max_abs": float(np.abs(a - b).max()), "log_posterior_mean_abs": float(np.abs(a - b).mean()),
        "argmax_agreement": float((a.argmax(1) == b.argmax(1)).mean()),
        "landmarks_max_abs_m": float(np.abs(lmk - lb).max()), "landmarks_max_motion_m": float(np.abs(lb).max()),
        "vertices_max_abs_m": float(np.abs(da - db).max()), "vertices_max_motion_m": float(np.abs(db).max()),
        "weights": animator.describe()}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="audio length per throughput run")
    ap.add_argument("--input-rate", type=int, default=22050, help="sample rate the clip is given at")
    ap.add_argument("--repeats", type=int, default=3, help="warm runs per stage (the median is reported)")
    ap.add_argument("--long-minutes", type=float, default=10.0, help="length of the streamed long-clip run")
    ap.add_argument("--backends", default="numpy,torch")
    ap.add_argument("--encoders", default="hama,mel")
    ap.add_argument("--fps", default="30,60")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "core.json"))
    ap.add_argument("--single", nargs=7, metavar=("BACKEND", "ENCODER", "FPS", "SECONDS", "RATE", "REPEATS", "STREAM"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--parity-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.single:
        b, e, f, s, r, n, stream = args.single
        print(json.dumps(measure(b, e, float(f), float(s), int(r), int(n), stream == "1")))
        return 0
    if args.parity_only:
        print(json.dumps(parity(args.seconds)))
        return 0

    runs = []
    jobs = [(b, e, f, args.seconds, args.input_rate, args.repeats, "0") for b in args.backends.split(",")
            for e in args.encoders.split(",") for f in args.fps.split(",")]
    jobs.append(("numpy", "hama", "30", args.long_minutes * 60.0, args.input_rate, 1, "1"))
    for job in jobs:
        r = _run([sys.executable, __file__, "--single", *map(str, job)])
        if r is None:
            return 1
        runs.append(r)
        load = f"load {r['loadavg_before'][0]:.1f}->{r['loadavg_after'][0]:.1f}" if r["loadavg_before"] else ""
        stages = "  ".join(f"{k} {v['x_realtime']:.0f}x" for k, v in r.get("stages", {}).items())
        e2e = r["end_to_end"]
        print(f"{r['backend']:6s} {r['encoder']:5s} {r['fps']:4.0f} fps {r['audio_seconds']:5.0f} s: {stages}  "
              f"END TO END {e2e['x_realtime']:.1f}x (CPU {e2e['x_realtime_cpu']:.1f}x), "
              f"peak {r['peak_rss_mb']:.0f} MB, {load}", flush=True)
    checks = _run([sys.executable, __file__, "--parity-only", "--seconds", str(args.seconds)])
    if checks is None:
        return 1
    print("parity:", json.dumps(checks))
    report = {
        "what": ("seconds of audio processed per second of compute (x real time; wall clock and the process's "
                 "CPU time), per stage and end to end, median of warm runs; peak resident memory; "
                 "/proc/loadavg before and after each run (the machine may be shared)"),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "runs": runs,
        "parity": checks,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def _run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr, file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main())
