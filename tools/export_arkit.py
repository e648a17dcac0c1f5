"""Speech -> ARKit-52 weight curves as a Live Link Face CSV and/or JSON, without Blender.

    python tools/export_arkit.py --audio speech.wav --csv take.csv --json take.json [--fps 30]

The networks animate the FLAME template, core.arkit solves the 52 weights (docs/arkit.md).
Unreal (Live Link Face CSV importers), Unity and other tools read the files; in Blender the
add-on keys the weights onto ARKit-named shape keys directly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import arkit  # noqa: E402
from core.errors import SpeechToFaceError  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--audio", required=True, help="speech audio (WAV/FLAC/OGG/MP3...)")
    ap.add_argument("--csv", default="", help="Live Link Face CSV to write")
    ap.add_argument("--json", default="", help="JSON to write ({fps, names, frames})")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--encoder", default="hama")
    ap.add_argument("--weights", default="", help="network weights folder (default: the bundled ones)")
    ap.add_argument("--allow-random", action="store_true",
                    help="use random-initialised networks when no trained weights exist (tests only)")
    args = ap.parse_args(argv)
    if not (args.csv or args.json):
        ap.error("nothing to write: give --csv and/or --json")
    from core.pipeline import Animator
    try:
        animator = Animator.load(args.weights or None, args.encoder, allow_random=args.allow_random)
        weights = arkit.weights_from_audio(animator, args.audio, args.fps)
    except (SpeechToFaceError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.csv:
        arkit.write_live_link_csv(args.csv, weights, args.fps)
    if args.json:
        arkit.write_json(args.json, weights, args.fps)
    print(f"{len(weights)} frames at {args.fps:g} fps ({animator.describe()}) -> "
          + ", ".join(p for p in (args.csv, args.json) if p))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
