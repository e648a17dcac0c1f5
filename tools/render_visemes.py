#!/usr/bin/env python3
"""Render the articulation teacher's visemes and a sample sequence to small PNGs (CPU only,
numpy rasteriser in core/corpus/raster.py; inside of the mouth drawn dark red).

    python tools/render_visemes.py --out docs/corpus    # visemes.png, sequence.png, lips.png, weights.png
    python tools/render_visemes.py --out /tmp/x --identity 3    # another corpus identity

visemes.png: each viseme class at its target (front and profile, lower face).
sequence.png: frames of an espeak-ng utterance every --step seconds, labelled with the phone.
lips.png: close-up of six poses (the closure is shown with the jaw half open).
weights.png: jaw skinning weight (red), lip-contact weight (green), upper-lip side (blue).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.corpus import articulation, deformers  # noqa: E402
from core.corpus.phonemes import VISEMES  # noqa: E402
from core.corpus.raster import label, render, write_png  # noqa: E402
from core.flame import load_topology  # noqa: E402

CENTER = np.array([0.0, -0.05, 0.03])
EXTENT = 0.13


def viseme_coeffs(viseme: str, identity) -> np.ndarray:
    target = np.array(articulation._TABLE[viseme][0], float)[None]
    kappa = np.array([articulation.CONTACT_CLASSES.get(viseme, 0.0)])
    if kappa[0] > 0:
        target[0, articulation.PARAMS.index("upper_raise")] = 0
        target[0, articulation.PARAMS.index("lower_tuck")] = 0
    return articulation.coefficients(target, kappa, identity)[0]


def tile(identity, coeffs, size, text):
    topo = load_topology()
    v = identity.neutral + identity.dense(coeffs[None])[0]
    center = topo.landmarks(identity.neutral.astype(np.float64))[[48, 54]].mean(0) + np.array([0, -0.006, -0.02])
    views = [render(v, topo.faces, view, size, center=center, extent=EXTENT) for view in ("front", "profile")]
    return label(np.concatenate(views, axis=1), text)


def grid(tiles, cols):
    h, w = tiles[0].shape[:2]
    rows = (len(tiles) + cols - 1) // cols
    out = np.zeros((rows * h, cols * w, 3), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = t
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/corpus")
    ap.add_argument("--identity", type=int, default=0, help="index into the corpus identities (0 = template)")
    ap.add_argument("--size", type=int, default=96, help="pixels per view")
    ap.add_argument("--text", default="Papa bought a new blue fish.")
    ap.add_argument("--voice", default="en-us+m3")
    ap.add_argument("--step", type=float, default=0.06)
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name, neutral = deformers.make_identities(0)[a.identity]
    identity = deformers.identity_basis(name, neutral)

    tiles = [tile(identity, viseme_coeffs(v, identity), a.size, v) for v in VISEMES]
    write_png(out / "visemes.png", grid(tiles, 4))

    from core.corpus.engines import VoiceSpec, get_engine
    syn = get_engine("espeak").synthesize(VoiceSpec("espeak", a.voice, "en"), a.text)
    coeffs = articulation.articulate(syn.phones, syn.duration, 1 / a.step, identity)
    frames = []
    for i, c in enumerate(coeffs):
        t = i * a.step
        ph = next((p.ipa or "_" for p in syn.phones if p.start <= t < p.end), "_")
        vis = articulation.segments_from_phones([p for p in syn.phones if p.start <= t < p.end] or [])
        frames.append(tile(identity, c, a.size, f"{t:.2f} {vis[0].viseme if vis else 'sil'}"))
        del ph
    write_png(out / "sequence.png", grid(frames, 4))

    topo = load_topology()
    # close-up of the lips: rest, closure with the jaw half open (contact must hold), f/v, u, a, sh
    rows = []
    lmk = topo.landmarks(identity.neutral.astype(np.float64))
    center = lmk[[48, 54]].mean(0) + np.array([0, -0.003, -0.005])
    for vis in ("sil", "PBM", "FV", "U", "A", "SH"):
        c = viseme_coeffs(vis, identity)
        text = vis
        if vis == "PBM":
            params = np.zeros((1, len(articulation.PARAMS)))
            params[0, 0], params[0, articulation.PARAMS.index("press")] = 0.5, 0.6
            c = articulation.coefficients(params, np.array([1.0]), identity)[0]
            text = "PBM JAW 0.5"
        v = identity.neutral + identity.dense(c[None])[0]
        views = [render(v, topo.faces, view, 2 * a.size, center=center, extent=0.06) for view in ("front", "profile")]
        rows.append(label(np.concatenate(views, axis=1), text))
    write_png(out / "lips.png", grid(rows, 3))

    f = deformers.template_fields()
    colors = np.stack([f.w_jaw, f.lip_close, 0.25 + 0.5 * f.upper_side], axis=1)
    views = [render(topo.template, topo.faces, view, 160, center=np.array([0, -0.04, 0.0]), extent=0.26,
                    colors=colors) for view in ("front", "profile")]
    write_png(out / "weights.png", np.concatenate(views, axis=1))
    print(f"wrote {out / 'visemes.png'}, {out / 'sequence.png'}, {out / 'lips.png'}, {out / 'weights.png'}")


if __name__ == "__main__":
    main()
