"""Articulation teacher: timed phones -> articulatory parameters -> deformer coefficients.

1. Each phone (IPA) is split into sounds (diphthongs share their span) and mapped to a viseme
   class (phonemes.py); each class has targets for the articulatory parameters PARAMS and a
   dominance for the jaw and for the lips.
2. Coarticulation by dominance blending (after Cohen & Massaro): every segment exerts on each
   parameter a dominance that is flat over its middle and decays exponentially outside it;
   the parameter is the dominance-weighted mean of the targets. Rounded sounds have long
   leading tails (anticipatory rounding); velars and alveolars have weak lip dominance, so the
   lips take their neighbours' shape; pauses dominate more the longer they are, so silence
   relaxes to rest.
   Vowels' jaw and lip-parting targets scale with their duration twice: relative to the
   utterance's median (prominence: stressed vowels are longer and open wider) and absolutely
   (undershoot compensation: a short vowel's target is raised, as talkers move faster then).
3. Second-order dynamics: a critically damped second-order low-pass run forwards and backwards
   (no lag) smooths every trajectory, like the inertia of jaw and lips.
4. Lip contact (kappa): bilabials (p b m) get a contact plateau from their start to their
   release, so the lips always reach full contact whatever the smoothing did; upper-lip raise
   and lower-lip tuck are released while the lips touch.
   Open vowels also part the lips beyond what the jaw does (``lip_open``: the lower lip drops
   further, expressed as a negative lip-contact fraction on the same deformer fields).
5. Coefficients for the deformers (deformers.COEFFS); a final check on the identity's lip
   contact pairs lowers the lower-lip tuck wherever it would push the lower lip through the
   upper one.

Per-utterance ``Style``: articulation strength (jaw and lips separately), smoothing frequency
(faster speakers articulate more sharply), and a rounding bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import voice_activity
from . import deformers
from .phonemes import VOWEL_VISEMES, split_ipa, viseme_of

PARAMS = ("jaw", "round", "protrude", "spread", "upper_raise", "lower_tuck", "press", "lip_open")
JAW_OPEN_AT_CHIN = 0.018   # metres of chin travel at jaw = 1 (wide-open vowel; see docs/corpus.md)
GRID_HZ = 200.0
JAW_TAU = 0.03
LIP_TAU_AFTER = 0.05
MAX_JAW, MAX_LIP = 1.1, 1.2
PROMINENCE_EXPONENT = 0.3      # opening ~ (vowel duration / utterance median) ** 0.3 ...
PROMINENCE_RANGE = (0.85, 1.15)  # ... within these bounds
# Speakers keep short vowels' openings by moving faster; the fixed dynamics here do not, so a
# vowel shorter than the reference gets its jaw and lip-parting target raised by
# (reference / duration) ** exponent, at most the cap (docs/corpus.md, "undershoot").
UNDERSHOOT_REFERENCE_S = 0.12
UNDERSHOOT_EXPONENT = 0.5
UNDERSHOOT_CAP = 1.3

#            jaw   round prot  spread uraise tuck  press open   jaw_dom lip_dom lip_tau_before
_TABLE = {
    "sil": ((0.00, 0.0, 0.0, 0.00, 0.00, 0.0, 0.0, 0.00), 0.0, 0.0, 0.06),
    "PBM": ((0.05, 0.0, 0.0, 0.00, 0.00, 0.0, 0.6, 0.00), 0.7, 0.6, 0.06),
    "BF":  ((0.10, 0.0, 0.0, 0.00, 0.00, 0.0, 0.2, 0.00), 0.6, 0.6, 0.06),
    "FV":  ((0.15, 0.0, 0.0, 0.10, 0.35, 1.0, 0.0, 0.00), 0.8, 1.0, 0.06),
    "TH":  ((0.30, 0.0, 0.0, 0.15, 0.25, 0.0, 0.0, 0.25), 0.6, 0.5, 0.06),
    "TD":  ((0.30, 0.0, 0.0, 0.10, 0.00, 0.0, 0.0, 0.30), 0.5, 0.1, 0.06),
    "SZ":  ((0.12, 0.0, 0.0, 0.35, 0.10, 0.0, 0.0, 0.15), 0.9, 0.4, 0.06),
    "SH":  ((0.15, 0.35, 0.9, 0.00, 0.30, 0.0, 0.0, 0.20), 0.7, 0.9, 0.10),
    "R":   ((0.30, 0.45, 0.4, 0.00, 0.00, 0.0, 0.0, 0.20), 0.4, 0.6, 0.08),
    "KG":  ((0.35, 0.0, 0.0, 0.00, 0.00, 0.0, 0.0, 0.30), 0.25, 0.05, 0.06),
    "J":   ((0.25, 0.0, 0.0, 0.40, 0.00, 0.0, 0.0, 0.20), 0.5, 0.4, 0.06),
    "W":   ((0.15, 1.0, 0.8, 0.00, 0.00, 0.0, 0.0, 0.00), 0.6, 1.0, 0.14),
    "A":   ((1.00, 0.0, 0.0, 0.20, 0.30, 0.0, 0.0, 0.30), 1.0, 0.6, 0.06),
    "AH":  ((0.80, 0.0, 0.0, 0.10, 0.15, 0.0, 0.0, 0.30), 1.0, 0.6, 0.06),
    "E":   ((0.65, 0.0, 0.0, 0.50, 0.10, 0.0, 0.0, 0.25), 1.0, 0.6, 0.06),
    "I":   ((0.35, 0.0, 0.0, 0.85, 0.10, 0.0, 0.0, 0.30), 1.0, 0.7, 0.06),
    "O":   ((0.70, 0.70, 0.4, 0.00, 0.00, 0.0, 0.0, 0.25), 1.0, 1.0, 0.16),
    "U":   ((0.35, 1.00, 0.8, 0.00, 0.00, 0.0, 0.0, 0.25), 1.0, 1.0, 0.16),
    "Y":   ((0.32, 0.85, 0.5, 0.00, 0.00, 0.0, 0.0, 0.30), 1.0, 1.0, 0.16),
    "OE":  ((0.60, 0.70, 0.4, 0.00, 0.00, 0.0, 0.0, 0.25), 1.0, 1.0, 0.16),
    "@":   ((0.50, 0.0, 0.0, 0.05, 0.00, 0.0, 0.0, 0.25), 0.8, 0.3, 0.06),
}
CONTACT_CLASSES = {"PBM": 1.0, "BF": 0.85}
OPEN = PARAMS.index("lip_open")


@dataclass(frozen=True)
class Style:
    jaw_strength: float = 1.0    # scales jaw targets
    lip_strength: float = 1.0    # scales lip targets
    smooth_hz: float = 9.0       # natural frequency of the second-order smoothing
    round_bias: float = 0.0      # added to rounding targets of rounded classes (can be negative)

    @staticmethod
    def random(rng: np.random.Generator, base: "Style | None" = None) -> "Style":
        b = base or Style()
        return Style(jaw_strength=float(np.clip(b.jaw_strength * rng.uniform(0.85, 1.15), 0.5, 1.3)),
                     lip_strength=float(np.clip(b.lip_strength * rng.uniform(0.85, 1.15), 0.5, 1.3)),
                     smooth_hz=float(np.clip(b.smooth_hz * rng.uniform(0.9, 1.1), 6.0, 14.0)),
                     round_bias=float(np.clip(b.round_bias + rng.normal(0, 0.05), -0.2, 0.2)))


@dataclass
class Segment:
    start: float
    end: float
    viseme: str


def segments_from_phones(phones) -> list:
    """Phones (start, end, ipa) -> viseme segments; multi-vowel phones (diphthongs) are split."""
    segs = []
    for p in phones:
        sounds = split_ipa(p.ipa) if p.ipa else []
        if p.ipa and not sounds and segs:      # a bare modifier (e.g. espeak's 'ʲ'): part of the previous sound
            segs[-1].end = p.end
            continue
        if not sounds:
            segs.append(Segment(p.start, p.end, "sil"))
            continue
        n = len(sounds)
        if n == 1:
            segs.append(Segment(p.start, p.end, viseme_of(sounds[0])))
            continue
        w = np.r_[1.3, np.ones(n - 1)]
        edges = p.start + (p.end - p.start) * np.r_[0, np.cumsum(w) / w.sum()]
        for k, s in enumerate(sounds):
            segs.append(Segment(float(edges[k]), float(edges[k + 1]), viseme_of(s)))
    return segs


def _second_order_zero_phase(x: np.ndarray, hz: float, fs: float) -> np.ndarray:
    """Critically damped second-order low-pass (two equal real poles at ``hz``), run forwards
    from rest and then backwards from the end value, so the result has no lag."""
    a = np.exp(-2 * np.pi * hz / fs)
    y = x
    for _ in range(2):
        y = _one_pole(y, a, start=np.zeros_like(y[:1]))
    y = y[::-1]
    for _ in range(2):
        y = _one_pole(y, a, start=y[:1])
    return y[::-1]


def _one_pole(y: np.ndarray, a: float, start: np.ndarray) -> np.ndarray:
    from scipy.signal import lfilter
    return lfilter([1 - a], [1, -a], y, axis=0, zi=a * start)[0]


def _prominence(segments) -> list:
    """Per-segment opening factor: long (stressed, phrase-final) vowels open wider than short
    (reduced) ones - duration is the one stress cue every engine's timings carry."""
    vowels = [s.end - s.start for s in segments if s.viseme in VOWEL_VISEMES]
    if not vowels:
        return [1.0] * len(segments)
    typical = float(np.median(vowels))
    return [float(np.clip(((s.end - s.start) / typical) ** PROMINENCE_EXPONENT, *PROMINENCE_RANGE))
            if s.viseme in VOWEL_VISEMES else 1.0 for s in segments]


def _undershoot_compensation(segments) -> list:
    """Per-segment target gain for short vowels: real talkers raise their articulators' speed
    when a vowel is short, so its opening falls short of the held target far less than a model
    with fixed dynamics and dominance blending predicts."""
    return [float(np.clip((UNDERSHOOT_REFERENCE_S / max(s.end - s.start, 1e-3)) ** UNDERSHOOT_EXPONENT,
                          1.0, UNDERSHOOT_CAP)) if s.viseme in VOWEL_VISEMES else 1.0 for s in segments]


def parameter_tracks(segments, duration: float, style: Style = Style(), fs: float = GRID_HZ):
    """(N, len(PARAMS)) parameters and (N,) lip contact kappa on a grid of ``fs`` Hz, and the grid."""
    t = np.arange(int(np.ceil(duration * fs)) + 1) / fs
    num = np.zeros((len(t), len(PARAMS)))
    den = np.full((len(t), len(PARAMS)), 1e-3)   # a faint pull to rest everywhere
    prominence = np.multiply(_prominence(segments), _undershoot_compensation(segments))
    for s, prom in zip(segments, prominence):
        target, jaw_dom, lip_dom, tau_before = _TABLE[s.viseme]
        target = np.array(target, float)
        d = max(s.end - s.start, 1e-3)
        if s.viseme == "sil":
            strength = 0.15 + 0.85 * min(d / 0.35, 1.0)
            jaw_dom = lip_dom = strength
        c = 0.5 * (s.start + s.end)
        dist = np.abs(t - c) - 0.35 * d
        before = t < c
        tau_j = JAW_TAU
        dj = jaw_dom * np.exp(-np.maximum(dist, 0) / tau_j)
        dl = lip_dom * np.exp(-np.maximum(dist, 0) / np.where(before, tau_before, LIP_TAU_AFTER))
        dom = np.stack([dj] + [dl] * (len(PARAMS) - 1), axis=1)
        tg = target.copy()
        tg[0] *= style.jaw_strength * prom
        tg[1:] *= style.lip_strength
        tg[OPEN] *= prom
        if tg[1] > 0:
            tg[1] = max(tg[1] + style.round_bias, 0.0)
        num += dom * tg
        den += dom
    params = num / den
    params = _second_order_zero_phase(params, style.smooth_hz, fs)

    kappa = np.zeros(len(t))
    for s in segments:
        if s.viseme not in CONTACT_CLASSES:
            continue
        d = s.end - s.start
        t_on0, t_on1 = s.start - 0.035, s.start + min(0.3 * d, 0.03)
        t_off0, t_off1 = s.end - 0.005, s.end + 0.05
        up = deformers.smoothstep((t - t_on0) / (t_on1 - t_on0))
        down = 1 - deformers.smoothstep((t - t_off0) / (t_off1 - t_off0))
        kappa = np.maximum(kappa, CONTACT_CLASSES[s.viseme] * np.minimum(up, down))
    release = 1 - kappa
    for name in ("upper_raise", "lower_tuck", "lip_open"):
        params[:, PARAMS.index(name)] *= release
    # keep strong styles human: jaw travel at most 1.1 x the open-vowel target, lips at most 1.2
    params[:, 0] = np.clip(params[:, 0], 0.0, MAX_JAW)
    params[:, 1:] = np.clip(params[:, 1:], 0.0, MAX_LIP)
    return params, kappa, t


def coefficients(params: np.ndarray, kappa: np.ndarray, identity) -> np.ndarray:
    """Parameters on any grid -> deformer coefficients (N, K) for one identity."""
    theta = params[:, 0] * JAW_OPEN_AT_CHIN / identity.jaw_radius
    c = np.zeros((len(params), deformers.K))
    c[:, 0], c[:, 1] = np.sin(theta), 1 - np.cos(theta)
    # kappa > 0 pulls the lower lip towards contact; lip_open (kappa < 0) lets it drop further
    # than the jaw carries it, as in open vowels
    k_eff = kappa - params[:, PARAMS.index("lip_open")] * (1 - kappa)
    c[:, 2], c[:, 3] = k_eff * c[:, 0], k_eff * c[:, 1]
    for name in PARAMS[1:-1]:
        c[:, deformers.COEFFS.index(name)] = params[:, PARAMS.index(name)]
    # keep the lower lip from passing through the upper one: lower the tuck where needed
    G = identity.gap_jacobian
    k_tuck = deformers.COEFFS.index("lower_tuck")
    g_tuck = G[k_tuck]
    gap_without = c @ G - np.outer(c[:, k_tuck], g_tuck)
    closing = g_tuck < 0
    if closing.any():
        allowed = np.min(np.maximum(gap_without[:, closing], 0) / -g_tuck[closing], axis=1)
        c[:, k_tuck] = np.minimum(c[:, k_tuck], allowed)
    return c


def articulate(phones, duration: float, fps: float, identity, style: Style = Style(), expression=None):
    """Timed phones -> (T, K) coefficients at ``fps`` (frame i shows time i / fps),
    T = ceil(duration * fps) (at least 1). ``expression`` (core.expression.Expression): the
    emotion and speaking-style codes that modulate the articulation; None is neutral."""
    segs = segments_from_phones(phones)
    codes = None if expression is None else expression.codes(int(np.ceil(duration * GRID_HZ)) + 1, GRID_HZ)
    if codes is not None:
        # speaking style also changes how crisp the motion is (its mean over the clip)
        style = Style(style.jaw_strength, style.lip_strength,
                      float(style.smooth_hz * (1 + STYLE_SMOOTHING * codes[:, -1].mean())), style.round_bias)
    params, kappa, t = parameter_tracks(segs, duration, style)
    extra = np.zeros((len(t), len(EXPRESSION_COEFFS)))
    if codes is not None:
        params, extra = modulate(params, codes, kappa)
    n = max(1, int(np.ceil(duration * fps - 1e-9)))
    tf = np.arange(n) / fps
    p = np.stack([np.interp(tf, t, params[:, k]) for k in range(params.shape[1])], axis=1)
    e = np.stack([np.interp(tf, t, extra[:, k]) for k in range(extra.shape[1])], axis=1)
    kf = np.interp(tf, t, kappa)
    c = coefficients(p, kf, identity)
    for k, name in enumerate(EXPRESSION_COEFFS):
        c[:, deformers.COEFFS.index(name)] = e[:, k]
    return c.astype(np.float32)


# --- emotion and speaking style (core.expression codes: happy, sad, angry, surprised, style) -------
# Each code scales the articulation (jaw and lips), biases lip shapes, and drives expression
# deformers. Values are the teacher's choices (docs/corpus.md says why): a smile spreads the lips
# and resists rounding, sadness damps the jaw and the lips, anger tenses (presses, raises the upper
# lip) and sharpens, surprise opens the jaw; style -1..1 scales jaw and lips by 0.7..1.3.
STYLE_JAW, STYLE_LIPS, STYLE_SMOOTHING = 0.30, 0.25, 0.15
JAW_GAIN = {"happy": 0.05, "sad": -0.30, "angry": 0.10, "surprised": 0.20}
LIP_GAIN = {"happy": 0.0, "sad": -0.20, "angry": 0.05, "surprised": 0.05}
EXPRESSION_COEFFS = ("smile", "corner_down", "brow_raise", "brow_inner_raise", "brow_lower", "eye_wide", "squint")


def modulate(params: np.ndarray, codes: np.ndarray, kappa: np.ndarray):
    """Apply per-frame codes (N, 5) to parameters (N, len(PARAMS)); returns (params, extra)
    where extra holds the expression deformers' coefficients (N, len(EXPRESSION_COEFFS)).
    ``kappa`` (lip contact): what an emotion adds to the upper lip is released during contact,
    as the teacher's own raise is."""
    from ..expression import CODE_NAMES
    h, sd, an, su, st = (codes[:, CODE_NAMES.index(n)] for n in CODE_NAMES)
    p = params.copy()
    jaw = (1 + STYLE_JAW * st) * (1 + JAW_GAIN["happy"] * h + JAW_GAIN["sad"] * sd
                                  + JAW_GAIN["angry"] * an + JAW_GAIN["surprised"] * su)
    lips = (1 + STYLE_LIPS * st) * (1 + LIP_GAIN["happy"] * h + LIP_GAIN["sad"] * sd + LIP_GAIN["angry"] * an
                                    + LIP_GAIN["surprised"] * su)
    p[:, 0] = p[:, 0] * jaw + 0.06 * su
    p[:, 1:] *= lips[:, None]
    p[:, PARAMS.index("spread")] += 0.45 * h + 0.15 * an
    p[:, PARAMS.index("round")] *= 1 - 0.35 * h
    p[:, PARAMS.index("press")] += 0.20 * an
    p[:, PARAMS.index("upper_raise")] += 0.25 * an * (1 - kappa)
    p[:, 0] = np.clip(p[:, 0], 0.0, MAX_JAW)
    p[:, 1:] = np.clip(p[:, 1:], 0.0, MAX_LIP)
    extra = np.stack([h, np.clip(sd + 0.3 * an, 0, 1),             # mouth corners
                      np.clip(su + 0.25 * h, 0, 1), sd, an,            # brows
                      0.8 * su, np.clip(0.6 * h + 0.3 * an, 0, 1)], axis=1)   # lids
    return p, extra


# --- rest in pauses ---------------------------------------------------------------------------
# Phone alignments (recogniser spans of recorded voices especially) often run a word's last
# phone through the pause after it, and coarticulation keeps short pauses half open. Measured on
# the corpus, only 40-80 % of the frames in audible pauses had the lips within 1 mm of rest, and
# the network learnt to hold the mouth open whenever a real speaker paused. Speakers close the
# mouth when they stop talking, so the teacher's opening fields go to rest wherever the
# recording itself is quiet (core.voice_activity.pause_weights: relative to its own speech
# level, so noise floors do not matter; the animator applies the same pauses at inference).
OPENING_COEFFS = ("jaw_sin", "jaw_cos", "close_sin", "close_cos", "upper_raise", "lower_tuck")


def rest_in_pauses(coeffs: np.ndarray, audio: np.ndarray, rate: int, fps: float) -> np.ndarray:
    """The teacher's coefficients with the mouth's opening fields at rest in audible pauses
    (rounding, spreading, pressing and every emotion field are kept)."""
    w = voice_activity.pause_weights(audio, rate, fps, len(coeffs))
    if not w.any():
        return coeffs
    out = np.array(coeffs, copy=True)
    cols = [deformers.COEFFS.index(n) for n in OPENING_COEFFS]
    out[:, cols] *= (1.0 - w)[:, None].astype(out.dtype)
    return out
