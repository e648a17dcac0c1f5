"""Build the lip sides of the FLAME template once and ship them as core/assets/lip_sides.npz.

    python tools/build_lip_sides.py [--out core/assets/lip_sides.npz]

Motion transfer (core/transfer.py) must never bind a vertex of the user's upper lip to FLAME's
lower lip. Which template vertex belongs to which lip is taken from the articulation teacher's
jaw field (core/corpus/deformers.py: harmonic, 0 on the upper rim of the mouth opening, 1 on the
lower rim, 1 on the mandible), so the split is exactly the one the networks learned to move:
lower lip where the jaw weight is at least one half. Only the lips and the skin within 10 mm of
them are labelled (the teacher's lip zone); elsewhere the two lips are never close.
Needs scipy (the corpus engine does); the add-on only reads the result.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core import transfer  # noqa: E402
from core.corpus.deformers import template_fields  # noqa: E402


def build() -> np.ndarray:
    f = template_fields()
    label = np.full(len(f.w_jaw), transfer.FREE, np.int8)
    zone = f.lip_zone > 0.01
    label[zone & (f.w_jaw < 0.5)] = transfer.UPPER
    label[zone & (f.w_jaw >= 0.5)] = transfer.LOWER
    return label


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "core" / "assets" / "lip_sides.npz"))
    args = ap.parse_args(argv)
    label = build()
    np.savez_compressed(args.out, vertex_side=label)
    print(f"{args.out}: {int((label == transfer.UPPER).sum())} upper-lip and "
          f"{int((label == transfer.LOWER).sum())} lower-lip vertices")
    return 0


if __name__ == "__main__":
    sys.exit(main())
