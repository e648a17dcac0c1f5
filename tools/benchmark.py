"""Inference speed and memory of the core pipeline.

For each back end (numpy, torch), encoder (hama, mel) and frame rate (30, 60) it measures, on
the bundled sample speech looped to ``--seconds``, how many seconds of audio are processed per
second of compute by S2L (encoder included), by S2D, and end to end, plus the peak resident
memory of that run. A last run streams a ``--long-minutes`` clip end to end (numpy) to show
memory stays bounded. Each measurement runs in its own process so peaks do not mix.

    python tools/benchmark.py                      # writes docs/benchmarks/core.json
    python tools/benchmark.py --seconds 20 --long-minutes 2 --out /tmp/bench.json
"""

from __future__ import annotations

import argparse
import json
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


def measure(backend: str, encoder: str, fps: float, seconds: float, stream_only: bool) -> dict:
    import numpy as np
    from core import audio, flame
    from core.pipeline import Animator

    animator = Animator.load(encoder=encoder, backend=backend, allow_random=True)
    speech = audio.load_audio(ROOT / "core" / "assets" / "audio" / "sample_speech.wav")
    clip = np.resize(speech, int(seconds * audio.SAMPLE_RATE))
    neutral = flame.load_topology().template
    result = {"backend": backend, "encoder": encoder, "fps": fps, "audio_seconds": seconds,
              "weights": animator.describe()}
    if stream_only:
        t0 = time.perf_counter()
        frames = sum(len(block) for _, block in animator.stream((clip, 16000), neutral, fps))
        wall = time.perf_counter() - t0
        result.update(frames=frames, end_to_end_x_realtime=seconds / wall, wall_seconds=wall)
    else:
        t0 = time.perf_counter()
        lmk = animator.landmark_displacements(audio.normalise_loudness(clip), fps)
        t_s2l = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(0, len(lmk), animator.s2d_batch):
            animator.s2d(lmk[i:i + animator.s2d_batch])
        t_s2d = time.perf_counter() - t0
        t0 = time.perf_counter()
        anim = animator.animate((clip, 16000), neutral, fps)
        t_all = time.perf_counter() - t0
        result.update(frames=anim.num_frames, s2l_x_realtime=seconds / t_s2l, s2d_x_realtime=seconds / t_s2d,
                      end_to_end_x_realtime=seconds / t_all, wall_seconds=t_all)
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="audio length per throughput run")
    ap.add_argument("--long-minutes", type=float, default=10.0, help="length of the streamed long-clip run")
    ap.add_argument("--backends", default="numpy,torch")
    ap.add_argument("--encoders", default="hama,mel")
    ap.add_argument("--fps", default="30,60")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "core.json"))
    ap.add_argument("--single", nargs=5, metavar=("BACKEND", "ENCODER", "FPS", "SECONDS", "STREAM"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.single:
        b, e, f, s, stream = args.single
        print(json.dumps(measure(b, e, float(f), float(s), stream == "1")))
        return 0

    runs = []
    jobs = [(b, e, f, args.seconds, "0") for b in args.backends.split(",") for e in args.encoders.split(",")
            for f in args.fps.split(",")]
    jobs.append(("numpy", "hama", "30", args.long_minutes * 60.0, "1"))
    for job in jobs:
        cmd = [sys.executable, __file__, "--single", *map(str, job)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            return 1
        r = json.loads(out.stdout.strip().splitlines()[-1])
        runs.append(r)
        kind = "stream" if job[4] == "1" else "whole"
        print(f"{r['backend']:6s} {r['encoder']:5s} {r['fps']:5.1f} fps {r['audio_seconds']:6.0f} s {kind:6s}: "
              + (f"S2L {r['s2l_x_realtime']:6.1f}x  S2D {r['s2d_x_realtime']:6.1f}x  " if kind == "whole" else "")
              + f"end-to-end {r['end_to_end_x_realtime']:6.1f}x real time, peak {r['peak_rss_mb']:.0f} MB", flush=True)
    report = {
        "what": "seconds of audio processed per second of compute (x real time) and peak resident memory",
        "machine": {"cpu_count": __import__("os").cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
