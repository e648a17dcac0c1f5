#!/usr/bin/env python3
"""Convert an official VOCASET release (licence required; never downloaded by this project)
into the project's corpus format, readable with core.corpus.dataset.Corpus.

    python tools/convert_vocaset.py /path/to/vocaset data/vocaset

The folder must hold data_verts.npy, raw_audio_fixed.pkl, templates.pkl, subj_seq_to_idx.pkl.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.corpus.vocaset import convert  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", help="VOCASET release folder")
    ap.add_argument("out", help="output corpus folder")
    ap.add_argument("--shard-utterances", type=int, default=20)
    a = ap.parse_args(argv)
    try:
        convert(a.source, a.out, a.shard_utterances)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
