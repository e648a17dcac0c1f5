"""Click-to-baked time of the add-on: a 10 s clip at 30 fps, per-frame and compact, + .blend size.

    python tools/benchmark_bake.py [--seconds 10] [--fps 30] [--out docs/benchmarks/bake.json]

"Click to baked" is what the button does: read and check the head and the sound strip, run
inference (the numpy runtime, as in stock Blender), fit the compact basis when asked, write
shape keys + Action. It is timed through the same code path as the operator (job.prepare ->
job.infer -> job.apply); the first, cold run (weights and encoder loading) is reported
separately from warm runs. Audio is 10 s of espeak-ng speech when espeak-ng is installed,
else a synthetic voiced signal (the network cost does not depend on what is said).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

TEXT = ("The quick brown fox jumps over the lazy dog while five wizards box jolly quickly. "
        "Peter Piper picked a peck of pickled peppers, and she sells sea shells by the sea shore.")


def make_audio(path: str, seconds: float) -> str:
    """Speech of exactly ``seconds`` (espeak-ng, looped/cut), or a synthetic voice."""
    import wave
    import numpy as np
    rate = 22050
    if shutil.which("espeak-ng"):
        raw = path + ".espeak.wav"
        subprocess.run(["espeak-ng", "-w", raw, TEXT], check=True, capture_output=True)
        with wave.open(raw) as w:
            rate = w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64) / 32768
        os.unlink(raw)
        n = int(seconds * rate)
        x = np.tile(x, int(np.ceil(n / len(x))))[:n]
        source = "espeak-ng"
    else:  # a voiced buzz with syllable-rate loudness changes
        t = np.arange(int(seconds * rate)) / rate
        x = 0.4 * np.sign(np.sin(2 * np.pi * 120 * t)) * np.clip(np.sin(2 * np.pi * 4 * t), 0, None)
        source = "synthetic"
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return source


def engine_threads() -> int:
    """Threads the add-on's S2D and pitch tracker use on this machine (core.parallel)."""
    from core import parallel
    return parallel.default_threads()


def _loadavg():
    """/proc/loadavg's 1, 5 and 15 minute figures (the machine may be shared), or None."""
    try:
        with open("/proc/loadavg") as fh:
            return [float(x) for x in fh.read().split()[:3]]
    except OSError:
        return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=2, help="warm runs per mode (best is reported)")
    ap.add_argument("--encoder", default="hama")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks", "bake.json"))
    args = ap.parse_args(argv)

    import bpy
    from blender_addon import api, compat, headless, job
    load_before = _loadavg()
    tmp = tempfile.mkdtemp(prefix="s2f_bench_")
    wav = os.path.join(tmp, "clip.wav")
    audio_source = make_audio(wav, args.seconds)
    head = os.path.join(ROOT, "core", "assets", "heads", "sample_neutral.ply")
    results = {}
    cold = None
    for mode in ("PER_FRAME", "COMPACT"):
        runs = []
        for r in range(args.repeats + (1 if cold is None else 0)):
            scene = headless.new_scene()
            api.set_fps(scene, args.fps)
            obj = api.load_head(head)
            strip = compat.new_sound_strip(scene, "clip", wav, 1, 1)
            settings = job.BakeSettings(mode=mode, encoder=args.encoder)
            t0 = time.perf_counter()
            request = job.prepare(scene, obj, settings, strip=strip)
            t1, c1 = time.perf_counter(), time.process_time()
            outcome = job.infer(request)
            t2, c2 = time.perf_counter(), time.process_time()
            result = job.apply(scene, request, outcome)
            t3 = time.perf_counter()
            timing = {"total_s": t3 - t0, "prepare_s": t1 - t0, "inference_s": t2 - t1, "write_s": t3 - t2,
                      "inference_cpu_s": c2 - c1}  # CPU time of the process: less sensitive to other jobs
            if cold is None:
                cold = dict(timing, mode=mode)
                continue
            runs.append(timing)
        best = min(runs, key=lambda t: t["total_s"])
        blend = os.path.join(tmp, f"{mode.lower()}.blend")
        headless.save_blend(blend, compress=False, pack_audio=False)
        blend_z = os.path.join(tmp, f"{mode.lower()}_z.blend")
        headless.save_blend(blend_z, compress=True, pack_audio=False)
        results[mode.lower()] = {
            **{k: round(v, 3) for k, v in best.items()},
            "frames": result.frames, "shape_keys": result.shape_keys,
            "blend_mb": round(os.path.getsize(blend) / 1e6, 2),
            "blend_compressed_mb": round(os.path.getsize(blend_z) / 1e6, 2),
            **({"max_error_m": result.max_error, "error_bound_m": result.error_bound} if mode == "COMPACT" else {}),
        }
        print(f"{mode.lower():9s}: {best['total_s']:.2f} s click-to-baked (inference {best['inference_s']:.2f} s, "
              f"write {best['write_s']:.2f} s), {result.shape_keys} shape keys, "
              f".blend {results[mode.lower()]['blend_mb']} MB ({results[mode.lower()]['blend_compressed_mb']} MB compressed)")
    # Empty scene + head only, to separate the bake's share of the file size.
    headless.new_scene()
    api.load_head(head)
    base = os.path.join(tmp, "head_only.blend")
    headless.save_blend(base, pack_audio=False)
    report = {
        "clip_seconds": args.seconds, "fps": args.fps, "audio": audio_source, "encoder": args.encoder,
        "backend": "numpy", "weights_trained": result.trained,
        "weights": result.description,
        "cold_first_run": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in cold.items()},
        "warm_best_of": args.repeats, **results,
        "head_only_blend_mb": round(os.path.getsize(base) / 1e6, 2),
        "s2d_threads": engine_threads(),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "blender": bpy.app.version_string},
        "loadavg_before": load_before, "loadavg_after": _loadavg(),
        "note": "Timed through job.prepare/infer/apply, the operator's code path; numpy runtime. "
                "Weights state above: random-initialised nets cost the same compute as trained ones.",
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2)
        fh.write("\n")
    print(f"cold first run: {cold['total_s']:.2f} s; wrote {args.out}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
