"""Peak memory and time of long bakes, measured on child processes as a user runs the tools.

    python tools/benchmark_memory.py                      # 30 minutes of speech -> docs/benchmarks/memory.json
    python tools/benchmark_memory.py --minutes 2 --out /tmp/memory.json
    python tools/benchmark_memory.py --runs batch_item --merge     # one run, added to the existing report

The speech is the bundled sample (core/assets/audio/sample_speech.wav, 16 kHz mono) repeated
to the length asked for. Three runs, each a separate process whose peak resident memory is the
kernel's own account (``ru_maxrss`` of that child, from ``os.wait4``):

* ``tools/bake.py --mode compact``: the compact bake of the whole clip;
* ``tools/batch_bake.py`` with a one-item manifest (compact): a batch item of the same length;
* ``tools/bake.py`` in per-frame mode (the default): refused before any inference, with the
  size it would have written.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import wave


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "core", "assets", "audio", "sample_speech.wav")
HEAD = os.path.join(ROOT, "core", "assets", "heads", "sample_neutral.ply")


def long_speech(path: str, minutes: float) -> float:
    """Write ``minutes`` of the sample speech, repeated, as 16-bit WAV; returns its length in seconds."""
    with wave.open(SAMPLE, "rb") as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        frames = w.readframes(w.getnframes())
    one = len(frames) // (width * channels)
    total = int(minutes * 60 * rate)
    with wave.open(path, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        written = 0
        while written < total:
            n = min(one, total - written)
            out.writeframes(frames[: n * width * channels])
            written += n
    return total / rate


def measure(argv: list) -> dict:
    """Run a tool; its wall time, exit status, output and peak resident memory (MB)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as so, tempfile.TemporaryFile("w+") as se:
        proc = subprocess.Popen([sys.executable, *argv], stdout=so, stderr=se, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        so.seek(0)
        se.seek(0)
        stdout, stderr = so.read(), se.read()
    # ru_maxrss is in kilobytes on Linux (bytes on macOS).
    peak_mb = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return {"command": " ".join(["python", *[os.path.relpath(a, ROOT) if os.path.isabs(a) and a.startswith(ROOT)
                                             else a for a in argv]]),
            "exit_status": proc.returncode, "seconds": round(seconds, 1), "peak_rss_mb": round(peak_mb, 1),
            "stdout_tail": stdout.strip().splitlines()[-3:], "stderr_tail": stderr.strip().splitlines()[-2:]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks", "memory.json"))
    ap.add_argument("--runs", default=",".join(RUNS), help=f"which runs, comma-separated (default: {','.join(RUNS)})")
    ap.add_argument("--merge", action="store_true",
                    help="add these runs to the report already in --out (runs can go in separate processes)")
    args = ap.parse_args(argv)
    wanted = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = sorted(set(wanted) - set(RUNS))
    if unknown:
        ap.error(f"unknown runs {unknown}; choose from {list(RUNS)}")
    report = {"minutes": args.minutes, "audio": "core/assets/audio/sample_speech.wav repeated (16 kHz mono)",
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.system()},
              "limit_mb": 1024, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="s2f-memory-") as tmp:
        wav = os.path.join(tmp, "long_speech.wav")
        report["audio_seconds"] = long_speech(wav, args.minutes)
        for name in wanted:
            run = json.loads(json.dumps(RUNS[name](wav, tmp)).replace(tmp, "$TMP"))   # no machine paths
            _parse(run)
            run["under_limit"] = run["peak_rss_mb"] <= report["limit_mb"]
            report["runs"][name] = run
            print(f"{name}: exit status {run['exit_status']}, {run['seconds']} s, peak {run['peak_rss_mb']} MB",
                  flush=True)
            _write(args.out, report, args.merge)
    print(f"wrote {args.out}")
    return 0 if all(r["under_limit"] for r in report["runs"].values()) else 1


def _per_frame_refused(wav, tmp):
    return measure([os.path.join(ROOT, "tools", "bake.py"), "--mesh", HEAD, "--audio", wav, "--out",
                    os.path.join(tmp, "per_frame.blend")])


def _compact_bake(wav, tmp):
    out = os.path.join(tmp, "compact.blend")
    run = measure([os.path.join(ROOT, "tools", "bake.py"), "--mesh", HEAD, "--audio", wav, "--mode", "compact",
                   "--out", out])
    if os.path.isfile(out):
        run["blend_mb"] = round(os.path.getsize(out) / 1e6, 1)
    return run


def _batch_item(wav, tmp):
    manifest = os.path.join(tmp, "one.csv")
    with open(manifest, "w", encoding="utf-8") as fh:
        fh.write(f"audio,name,mode\n{wav},long_item,compact\n")
    run = measure([os.path.join(ROOT, "tools", "batch_bake.py"), manifest, "--out-dir", os.path.join(tmp, "batch")])
    item = os.path.join(tmp, "batch", "long_item.blend")
    if os.path.isfile(item):
        run["blend_mb"] = round(os.path.getsize(item) / 1e6, 1)
    return run


RUNS = {"per_frame_refused": _per_frame_refused, "compact_bake": _compact_bake, "batch_item": _batch_item}


def _parse(run: dict) -> None:
    text = " ".join(run["stdout_tail"] + run["stderr_tail"])
    m = re.search(r"Baked (\d+) frames.*?\(compact, (\d+) shape keys\), max error ([\d.e-]+) \(bound ([\d.e-]+)\)", text)
    if m:
        run.update(frames=int(m.group(1)), shape_keys=int(m.group(2)), max_error_m=float(m.group(3)),
                   bound_m=float(m.group(4)))
    m = re.search(r"ok, (\d+) frames", text)
    if m:
        run["frames"] = int(m.group(1))


def _write(path: str, report: dict, merge: bool) -> None:
    out = dict(report, runs=dict(report["runs"]))
    if merge and os.path.isfile(path):
        with open(path, encoding="utf-8") as fh:
            old = json.load(fh)
        if old.get("minutes") == report["minutes"]:
            out["runs"] = {**old.get("runs", {}), **report["runs"]}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=2)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
