"""Run the shipped model on real recordings and measure what can be measured without 4D capture.

The corpus is synthetic (plus teacher-labelled real voices), so this checks behaviour on real
human speech of voices the networks never heard:
  * opening: the signed inner-lip vertical gap (core.lip_aperture.vertical_gap: y of landmark 62
    minus y of 66, 0 at rest; the 62-66 distance is not a gap on FLAME) over speech frames:
    median, 95th percentile, maximum;
  * closures: at every p/b/m that hama's recogniser finds, the mesh's true lip aperture
    (core.lip_aperture.aperture: smallest upper-to-lower lip surface distance near the midline, 0
    where the surfaces cross) within the phone (+-1 frame) - sealed when <= 0.5 mm;
  * rest: the aperture in silent frames (inside pauses of 100 ms or more) - closed when <= 1 mm;
  * jaw and loudness: correlation of the chin's drop (landmark 8) with the loudness envelope;
  * closed where it should be open: the speech frames where the teacher animating the same phones
    (below) holds the lips open (gap over 2 mm there and a frame either side) and the network
    closes them (gap under 0.5 mm) - a mouth that shuts at every consonant reads as chewing.
Each is measured as shipped and again with the pause rest and the lip seal off (the networks
alone), so the report shows what the inference-time rules add; the JSON keeps every p/b/m (phone,
time, aperture both ways) so a seal the rules made or undid can be found. The ``teacher`` row is a
reference, not a network: the corpus' articulation teacher animating the phones hama finds (as
it labels the corpus' recorded voices), so a miss can be told apart as the teacher's (the
network follows it) or the network's (it falls short of what it was taught).
Recordings (``--set``): the bundled LibriVox sample; Debian's pocketsphinx-testdata (LibriVox
and CMU read speech), codec2-examples (several talkers, radio and studio) and the two voices the
corpus holds out from asterisk-core-sounds (French June, Italian Carlo); each group is used when
its package is installed. ``--set confirm`` is a second set kept apart from every choice made on
the first (training recipes, candidates): the asterisk prompt voices of Debian's
asterisk-prompt-es-co (Colombian Spanish) and asterisk-prompt-fr-armelle (French, Armelle
Desjardins), GSM-coded telephone prompts that sox decodes.

    python tools/evaluate_real.py --out docs/eval       # writes real_speech.md / .json / .png
    python tools/evaluate_real.py --set confirm --name real_speech_confirm
    python tools/evaluate_real.py --codec gsm --name real_speech_gsm   # the main set through GSM
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import audio as audio_io, flame, lip_aperture, lip_seal  # noqa: E402
from core.pipeline import Animator  # noqa: E402
from core.lip_aperture import OPEN_MM, SHUT_MM  # noqa: E402

# (group, glob, how many files at most: the longest first) - voices no training data came from
RECORDING_SETS = (
    ("librivox", str(ROOT / "core" / "assets" / "audio" / "*.wav"), 10),
    ("librivox", "/usr/share/pocketsphinx/test/data/librivox/*.wav", 10),
    ("cmu-cards", "/usr/share/pocketsphinx/test/data/cards/*.wav", 10),
    ("codec2", "/usr/share/codec2/wav/[a-z]*.wav", 12),
    ("asterisk-fr-June", "/usr/share/asterisk/sounds/fr_CA_f_June/*.wav", 12),
    ("asterisk-it-Carlo", "/usr/share/asterisk/sounds/it_IT_m_Carlo/*.wav", 12),
)
# The confirmation set: voices no training data, recipe or candidate choice ever saw.
CONFIRM_SETS = (
    ("asterisk-es-CO", "/usr/share/asterisk/sounds/es/*.gsm", 20),
    ("asterisk-fr-Armelle", "/usr/share/asterisk/sounds/fr/*.gsm", 20),
)
SETS = {"main": RECORDING_SETS, "confirm": CONFIRM_SETS}
# codec2's folder also holds coded (not original) speech and a concatenation of the others
EXCLUDE = ("all.wav", "f2400.wav", "m2400.wav")
# ... and two recordings of its digital-voice modems (a steady 1-2 kHz OFDM signal in a
# spectrogram): not speech, so the recogniser finds no phone in them and they are measured apart,
# as loud sounds that must not move the mouth
NON_SPEECH_MM = 1.0        # the inner-lip gap's 95th percentile over a non-speech recording's loud frames
MAX_SECONDS = 40.0         # long radio recordings are cut to their first 40 s
BILABIALS = {"p", "b", "m", "pʰ", "m̩", "bʲ", "pʲ", "mʲ"}
SEALED_MM, CLOSED_MM = 0.5, 1.0
# per file, the networks-alone figures kept beside the shipped ones
ALONE_KEYS = ("gap_speech_median_mm", "gap_speech_p95_mm", "gap_max_mm", "bilabials_sealed",
              "aperture_rest_median_mm", "jaw_loudness_correlation")
SPEECH_DB, QUIET_DB = 18.0, 22.0    # speech frames: within 18 dB of the clip's level; silent: 22 dB under it
PAUSE_HALF = 0.033         # a silent frame counts as rest when its neighbours are silent too (~100 ms)


def default_recordings(which: str = "main") -> list:
    out = []
    for group, pattern, most in SETS[which]:
        files = [f for f in glob.glob(pattern) if Path(f).name not in EXCLUDE]
        files.sort(key=lambda f: (-Path(f).stat().st_size, f))
        out += [(group, f) for f in sorted(files[:most])]
    return out


def load(path: str) -> np.ndarray:
    """16 kHz samples of a recording; raw GSM prompts (no header, which soundfile cannot read)
    are decoded by sox to 16-bit samples on a pipe, without dither (-D: sox's default dither is
    random, so the same prompt decoded twice differed and the recogniser found other phones)."""
    if not path.lower().endswith(".gsm"):
        return audio_io.load_audio(path)
    if shutil.which("sox") is None:
        raise SystemExit(f"{path}: decoding GSM needs sox (apt-get install sox libsox-fmt-all)")
    raw = subprocess.run(["sox", "-D", path, "-t", "raw", "-e", "signed", "-b", "16", "-c", "1", "-r", "16000", "-"],
                         check=True, capture_output=True).stdout
    return audio_io.load_audio(np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0, 16000)


def recording(path: str, asr, codec: str | None = None) -> tuple[np.ndarray, list]:
    """The samples of one recording (16 kHz, loudness-normalised, at most MAX_SECONDS; through a
    codec's round trip first if one is given) and the phones hama's recogniser finds in them."""
    samples = load(path)
    if codec:
        from core.corpus.augment import CODECS
        samples = CODECS[codec](samples)
    samples = audio_io.normalise_loudness(samples)[: int(MAX_SECONDS * 16000)]
    return samples, asr.phoneme_spans(asr.transcribe_waveform(samples, 16000))


def reference_open(samples: np.ndarray, spans, fps: float, teacher: "TeacherReference") -> np.ndarray:
    """(T,) frames where the teacher animating these phones (with its rest in pauses) holds the
    lips open: gap over ``OPEN_MM`` there and a frame either side (the phones' times are the
    recogniser's, a frame off at times)."""
    anim = teacher.animate(samples, spans, fps)
    gap = lip_aperture.vertical_gap(flame.landmarks(anim.displacements.astype(np.float64))) * 1000.0
    return np.minimum.reduce([gap, np.r_[gap[:1], gap[:-1]], np.r_[gap[1:], gap[-1:]]]) > OPEN_MM


def analyse(path: str, animator: Animator, fps: float, heard: tuple) -> tuple[dict, dict] | None:
    """Measures of one recording (``heard``: what ``recording`` returned) as shipped, and with the
    pause rest and the lip seal off (the networks alone); None when hama's recogniser finds no
    phone in it (not speech: its loud frames would count as speech frames; ``non_speech_opening``
    measures it)."""
    samples, spans, ref_open = heard
    if not spans:
        return None
    rows = []
    for rules in (True, False):      # (the teacher has no lip seal to switch: it ignores lip_seal)
        animator.pause_rest = animator.lip_seal = rules
        rows.append(measure(path, samples, animator, fps, spans,
                            None if isinstance(animator, TeacherReference) else ref_open))
    animator.pause_rest = animator.lip_seal = True
    shipped, alone = rows
    # each file and each p/b/m also says what the networks alone did, so a seal the rules
    # undo (or make) can be found
    shipped["networks_alone"] = {k: alone[k] for k in ALONE_KEYS}
    for b, b_alone in zip(shipped["bilabials"], alone["bilabials"]):
        b["aperture_alone_mm"] = b_alone["aperture_mm"]
    by_rules = [(b["aperture_mm"] <= SEALED_MM) - (b["aperture_alone_mm"] <= SEALED_MM) for b in shipped["bilabials"]]
    shipped["bilabials_sealed_by_rules"] = by_rules.count(1)
    shipped["bilabials_unsealed_by_rules"] = by_rules.count(-1)
    return shipped, alone


def loudness(samples: np.ndarray, fps: float, num_frames: int) -> tuple[np.ndarray, float, np.ndarray]:
    """Each frame's level (dB, 40 ms around it), the clip's speech level (95th percentile: robust
    to a click or a shout) and the speech frames (within SPEECH_DB of that level)."""
    loud = audio_io.frame_level_db(samples, 16000, fps, num_frames)
    level = float(np.percentile(loud, 95))
    return loud, level, loud > level - SPEECH_DB


class TeacherReference:
    """The articulation teacher on the template identity, animating hama's phones of a recording;
    measured like a network (``pause_rest``: the corpus' rest in audible pauses)."""

    pause_rest = True

    def __init__(self):
        from core.corpus import deformers
        self.identity = deformers.identity_basis("template", flame.load_topology().template.astype(np.float64))

    def describe(self) -> str:
        return "the articulation teacher (core.corpus.articulation) on hama's phones, template identity"

    def animate(self, samples: np.ndarray, spans, fps: float):
        from types import SimpleNamespace
        from core.corpus import articulation
        from core.corpus.engines.recorded import phones_from_spans
        coeffs = articulation.articulate(phones_from_spans(spans, samples), len(samples) / 16000, fps, self.identity)
        if self.pause_rest:
            coeffs = articulation.rest_in_pauses(coeffs, samples, 16000, fps)
        d = self.identity.dense(coeffs).astype(np.float32)
        return SimpleNamespace(displacements=d, vertices=self.identity.neutral[None] + d, num_frames=len(d))


def measure(path: str, samples: np.ndarray, animator, fps: float, spans, ref_open: np.ndarray | None = None) -> dict:
    topo = flame.load_topology()
    if isinstance(animator, TeacherReference):
        anim = animator.animate(samples, spans, fps)
    else:
        anim = animator.animate((samples, 16000), topo.template, fps)
    lmk_d = flame.landmarks(anim.displacements.astype(np.float64))
    gap = lip_aperture.vertical_gap(lmk_d) * 1000.0              # mm, + = opening, 0 = rest
    aperture = lip_aperture.aperture(anim.vertices) * 1000.0     # mm on the mesh
    jaw_drop = -lmk_d[:, 8, 1] * 1000.0                          # mm, + = chin down
    loud, level, speech = loudness(samples, fps, anim.num_frames)
    quiet = loud < level - QUIET_DB              # read-speech recordings have noise floors 25-35 dB down
    k = max(1, int(round(PAUSE_HALF * fps)))
    rest = np.array([quiet[max(0, i - k):i + k + 1].all() for i in range(len(quiet))])
    closures, bilabials = [], []
    for s in spans:
        if s.phoneme in BILABIALS:
            a = max(0, int(s.start_ms / 1000 * fps) - 1)
            b = min(anim.num_frames, int(np.ceil(s.end_ms / 1000 * fps)) + 2)
            if b > a:
                closures.append(float(aperture[a:b].min()))
                bilabials.append({"phone": s.phoneme, "start_s": round(s.start_ms / 1000, 3),
                                  "aperture_mm": round(closures[-1], 3)})
    # per region (core/flame.py regions): 95th percentile of vertex motion over the clip
    if ref_open is not None:     # the teacher on these phones keeps the lips open, the network shuts them
        n = min(len(ref_open), len(gap))
        should_open = ref_open[:n] & speech[:n]
        shut = {"open_frames": int(should_open.sum()), "open_frames_shut": int((should_open & (gap[:n] < SHUT_MM)).sum())}
    else:
        shut = {}
    norms = np.linalg.norm(anim.displacements, axis=-1) * 1000.0
    regions = {name: float(np.percentile(norms[:, idx], 95)) for name, idx in flame.load_topology().regions.items()}
    return {"file": Path(path).name, "seconds": round(len(samples) / 16000, 2), "frames": anim.num_frames,
            "region_motion_p95_mm": regions,
            "speech_frames": int(speech.sum()), "rest_frames": int(rest.sum()),
            "gap_speech_median_mm": float(np.median(gap[speech])) if speech.any() else float("nan"),
            "gap_speech_p95_mm": float(np.percentile(gap[speech], 95)) if speech.any() else float("nan"),
            "gap_max_mm": float(gap.max()),
            "aperture_rest_median_mm": float(np.median(aperture[rest])) if rest.any() else float("nan"),
            "gap_rest_median_mm": float(np.median(gap[rest])) if rest.any() else float("nan"),
            "jaw_loudness_correlation": float(np.corrcoef(jaw_drop, loud)[0, 1]),
            "jaw_drop_p95_mm": float(np.percentile(jaw_drop, 95)),
            "bilabials_found": len(closures),
            "bilabials_sealed": int(sum(c <= SEALED_MM for c in closures)),
            # a weaker criterion, relative to the clip's own opening: lips at least half-way closed
            "bilabials_half_closed": int(sum(c < 0.5 * np.median(aperture[speech]) for c in closures))
            if speech.any() else 0,
            "bilabial_aperture_median_mm": float(np.median(closures)) if closures else float("nan"),
            "bilabials": bilabials, **shut,
            "_gap_speech": gap[speech].tolist(), "_aperture_rest": aperture[rest].tolist(),
            "_series": {"gap": gap.tolist(), "aperture": aperture.tolist(), "jaw": jaw_drop.tolist(),
                        "loud": loud.tolist(),
                        "bilabial_spans": [(s.start_ms / 1000, s.end_ms / 1000) for s in spans
                                           if s.phoneme in BILABIALS]}}


def non_speech_opening(path: str, samples: np.ndarray, animator, fps: float) -> dict:
    """The inner-lip gap over the loud frames of a recording with no speech in it (as shipped)."""
    anim = animator.animate((samples, 16000), flame.load_topology().template, fps)
    gap = lip_aperture.vertical_gap(flame.landmarks(anim.displacements.astype(np.float64))) * 1000.0
    gap = gap[loudness(samples, fps, anim.num_frames)[2]]
    return {"file": Path(path).name, "gap_loud_p95_mm": float(np.percentile(gap, 95)), "gap_max_mm": float(gap.max())}


def summarise(rows: list) -> dict:
    """Pooled over every speech / rest frame and every p/b/m of the set."""
    gaps = np.concatenate([r["_gap_speech"] for r in rows]) if rows else np.zeros(0)
    rest = np.concatenate([r["_aperture_rest"] for r in rows]) if rows else np.zeros(0)
    found = int(sum(r["bilabials_found"] for r in rows))
    sealed = int(sum(r["bilabials_sealed"] for r in rows))
    shut = {}
    if rows and "open_frames" in rows[0]:
        shut = {k: int(sum(r[k] for r in rows)) for k in ("open_frames", "open_frames_shut")}
        shut["open_frames_shut_share"] = shut["open_frames_shut"] / shut["open_frames"] if shut["open_frames"] else float("nan")
    return {
        "clips": len(rows), "seconds": round(float(sum(r["seconds"] for r in rows)), 1),
        "region_motion_p95_mm": {k: float(np.median([r["region_motion_p95_mm"][k] for r in rows]))
                                 for k in rows[0]["region_motion_p95_mm"]} if rows else {},
        "gap_speech_median_mm": float(np.median(gaps)), "gap_speech_p95_mm": float(np.percentile(gaps, 95)),
        "gap_max_mm": float(max(r["gap_max_mm"] for r in rows)),
        "bilabials_found": found, "bilabials_sealed": sealed,
        "bilabials_sealed_share": sealed / found if found else float("nan"),
        "rest_frames": int(rest.size),
        "rest_closed_share": float((rest <= CLOSED_MM).mean()) if rest.size else float("nan"),
        "jaw_loudness_correlation_mean": float(np.mean([r["jaw_loudness_correlation"] for r in rows])),
        **({k: int(sum(r[k] for r in rows)) for k in ("bilabials_sealed_by_rules", "bilabials_unsealed_by_rules")}
           if rows and "bilabials_sealed_by_rules" in rows[0] else {}),
        **shut,
    }


def plot(out: Path, stem: str, results: list, fps: float) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    shown = list({r["group"]: r for r in reversed(results)}.values())[::-1][:4]   # one clip per group
    fig, axes = plt.subplots(len(shown), 1, figsize=(8, 2.2 * len(shown)), dpi=90, squeeze=False)
    for ax, r in zip(axes[:, 0], shown):
        s = r["_series"]
        t = np.arange(len(s["gap"])) / fps
        ax.plot(t, s["gap"], color="tab:red", label="inner-lip vertical gap (mm)")
        ax.plot(t, s["aperture"], color="tab:purple", lw=0.8, label="mesh lip aperture (mm)")
        ax.plot(t, s["jaw"], color="tab:green", label="chin drop (mm)")
        ax2 = ax.twinx()
        ax2.plot(t, s["loud"], color="grey", lw=0.8, alpha=0.7)
        ax2.set_ylabel("dB", fontsize=7)
        for a, b in s["bilabial_spans"]:
            ax.axvspan(a, b, color="tab:blue", alpha=0.2)
        ax.set_title(f"{r['group']}: {r['file']} ({stem}); shaded: p/b/m found by hama, grey: loudness", fontsize=8)
        ax.legend(fontsize=6, loc="upper left")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    name = f"{stem}.png"
    fig.savefig(out / name)
    plt.close(fig)
    return name


def unique_recordings(items: list) -> list:
    """Drop files whose bytes repeat an earlier one (the bundled sample is also in the test data)."""
    seen, kept = set(), []
    for group, f in items:
        digest = hashlib.sha256(Path(f).read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            kept.append((group, f))
    return kept


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("audio", nargs="*", help="recordings (default: the sets above that are installed)")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--encoders", default="hama,mel,teacher",
                    help="comma list; teacher: the reference the networks were taught (see above)")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "eval"))
    ap.add_argument("--name", default="real_speech", help="report file stem")
    ap.add_argument("--set", choices=sorted(SETS), default="main",
                    help="main: the wider set; confirm: the voices kept apart from every choice")
    ap.add_argument("--codec", choices=["gsm"],
                    help="hear every recording through this codec's round trip first (core.corpus.augment): "
                         "what a telephone codec costs (the confirmation voices are GSM-coded prompts, the main "
                         "set's are not)")
    ap.add_argument("--seal", metavar="FROM,FULL,PRESS_MM",
                    help="lip seal of networks with a seal head: probability where it starts, where it is "
                         "full, and how far a full seal presses the lips (default: core.lip_seal's "
                         f"{lip_seal.SEAL_FROM:g},{lip_seal.SEAL_FULL:g},{lip_seal.PRESS * 1000:g}); for choosing them")
    args = ap.parse_args(argv)
    if args.seal:
        try:
            lo, full, press_mm = (float(v) for v in args.seal.split(","))
        except ValueError:
            ap.error(f"--seal takes three numbers FROM,FULL,PRESS_MM, got {args.seal!r}")
        if not 0 <= lo < full <= 1 or press_mm < 0:
            ap.error(f"--seal needs 0 <= FROM < FULL <= 1 and PRESS_MM >= 0, got {args.seal!r}")
        lip_seal.SEAL_FROM, lip_seal.SEAL_FULL, lip_seal.PRESS = lo, full, press_mm / 1000
    items = unique_recordings([("given", f) for f in args.audio] if args.audio else default_recordings(args.set))
    if not items:
        raise SystemExit("no recordings found")
    from hama.asr import ASRModel
    asr = ASRModel()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    groups = sorted({g for g, _ in items})
    report = {"fps": args.fps, "targets": {"gap_speech_p95_mm": ">= 10", "gap_speech_median_mm": ">= 4",
                                           "gap_max_mm": "<= 25", "bilabials_sealed_share": ">= 0.9",
                                           "rest_closed_share": ">= 0.95", "jaw_loudness_correlation_mean": ">= 0.6",
                                           "non_speech_gap_loud_p95_mm": f"<= {NON_SPEECH_MM:g}"},
              "recordings": [{"group": g, "file": Path(f).name} for g, f in items], "codec": args.codec,
              "encoders": {}}
    md = ["# Real speech", "", f"{len(items)} recordings in {len(groups)} groups ({', '.join(groups)}); "
          "none of these voices is in the training corpus"
          + ("; no training recipe was tuned on them: only a round's finalists are measured here "
             "(`docs/eval/candidates/README.md` says which choices between finalists these figures informed)"
             if args.set == "confirm" else "")
          + (f"; each heard through a {args.codec.upper()} round trip (`--codec {args.codec}`)" if args.codec else "")
          + ". Written by `tools/evaluate_real.py`; every figure "
          f"below is in `{args.name}.json` beside this file.", ""]
    # recognised once per recording: every encoder is judged on the same p/b/m
    heard = {f: recording(f, asr, args.codec) for _, f in items}
    # ... and the teacher animates those phones once: where it holds the lips open
    teacher = TeacherReference()
    heard = {f: (x, sp, reference_open(x, sp, args.fps, teacher) if sp else None) for f, (x, sp) in heard.items()}
    for enc in args.encoders.split(","):
        animator = teacher if enc == "teacher" else Animator.load(args.weights, encoder=enc)
        rows, alone, skipped, non_speech = [], [], [], []
        for g, f in items:
            measured = analyse(f, animator, args.fps, heard[f])
            if measured is None:
                skipped.append(f"{g}/{Path(f).name}")
                if enc != "teacher":      # no phones: the teacher rests by construction
                    non_speech.append({"group": g, **non_speech_opening(f, heard[f][0], animator, args.fps)})
                continue
            r, a = measured
            r["group"] = a["group"] = g
            rows.append(r)
            alone.append(a)
        non_speech_line = ([f"- not speech (the recogniser finds no phone in them), so measured apart: "
                            + ", ".join(f"{r['group']}/{r['file']} gap p95 {r['gap_loud_p95_mm']:.1f} mm"
                                        for r in non_speech)
                            + f" over their loud frames (target <= {NON_SPEECH_MM:g} mm: a loud sound alone does "
                            "not open the mouth)", ""] if non_speech else [])
        has_head = bool(getattr(animator, "has_seal_head", False))
        seal = {"seal_head": has_head, **({"lip_seal": {"from": lip_seal.SEAL_FROM, "full": lip_seal.SEAL_FULL,
                                                        "press_mm": lip_seal.PRESS * 1000}} if has_head else {})}
        heading = [f"## {enc} encoder" if enc != "teacher" else "## teacher (reference)", "",
                   f"{'Weights' if enc != 'teacher' else 'What'}: {animator.describe()}", "",
                   *([f"Lip seal (core.lip_seal): the seal head's probability closes the lips from "
                      f"{lip_seal.SEAL_FROM:g}, fully from {lip_seal.SEAL_FULL:g}, pressed "
                      f"{lip_seal.PRESS * 1000:g} mm at a full seal.", ""] if has_head else [])]
        if not rows:        # only non-speech recordings were given
            report["encoders"][enc] = {"weights": animator.describe(), "skipped_no_speech": skipped, **seal,
                                       "non_speech": non_speech, "summary": None}
            md += heading + non_speech_line
            print(f"{enc}: no speech; {non_speech}", flush=True)
            continue
        png = plot(out, f"{args.name}_{enc}", rows, args.fps)
        agg, agg_alone = summarise(rows), summarise(alone)
        by_group = {g: summarise(sel) for g in groups if (sel := [r for r in rows if r["group"] == g])}
        for r in rows:
            for key in [k for k in r if k.startswith("_")]:
                r.pop(key)
        report["encoders"][enc] = {"weights": animator.describe(), "skipped_no_speech": skipped, **seal,
                                   "non_speech": non_speech, "summary": agg,
                                   "summary_networks_alone": agg_alone, "groups": by_group, "files": rows}
        md += [*heading,
               f"- inner-lip vertical gap in speech: median {agg['gap_speech_median_mm']:.2f} mm, "
               f"95th percentile {agg['gap_speech_p95_mm']:.2f} mm, largest {agg['gap_max_mm']:.2f} mm "
               "(targets: >= 4, >= 10, <= 25)",
               f"- p/b/m found by hama: {agg['bilabials_found']}; lips sealed (aperture <= {SEALED_MM} mm) at "
               f"{agg['bilabials_sealed']} ({100 * agg['bilabials_sealed_share']:.0f} %, target >= 90 %)",
               f"- rest frames with the lips closed (aperture <= {CLOSED_MM} mm): "
               f"{100 * agg['rest_closed_share']:.0f} % of {agg['rest_frames']} (target >= 95 %)",
               f"- chin drop vs loudness correlation (mean over clips): {agg['jaw_loudness_correlation_mean']:.2f} "
               "(target >= 0.6)",
               *([f"- shut where the teacher on the same phones opens: of the {agg['open_frames']} speech frames "
                  f"where it holds the lips open (gap over {OPEN_MM:g} mm, a frame either side too), the lips are shut "
                  f"(gap under {SHUT_MM:g} mm) at {agg['open_frames_shut']} ({100 * agg['open_frames_shut_share']:.1f} %; "
                  f"the networks alone: {agg_alone['open_frames_shut']}, "
                  f"{100 * agg_alone['open_frames_shut_share']:.1f} %)"] if "open_frames" in agg else []),
               ("- the networks alone, without the pause rest (core.voice_activity.pause_weights)"
                + (" and the lip seal (core.lip_seal)" if has_head else "")
                + ": gap median "
                if enc != "teacher" else "- without the teacher's rest in audible pauses: gap median ")
               + f"{agg_alone['gap_speech_median_mm']:.2f} / p95 {agg_alone['gap_speech_p95_mm']:.2f} mm, p/b/m sealed "
               f"{100 * agg_alone['bilabials_sealed_share']:.0f} %, rest closed {100 * agg_alone['rest_closed_share']:.0f} %, "
               f"chin-loudness r {agg_alone['jaw_loudness_correlation_mean']:.2f}; "
               f"{'the rules' if enc != 'teacher' else 'the rest'} sealed {agg['bilabials_sealed_by_rules']} p/b/m "
               f"left open without them and opened {agg['bilabials_unsealed_by_rules']} sealed without them "
               "(each file's `bilabials` in the JSON)",
               "- motion per region (95th percentile of vertex motion, median over clips): "
               + ", ".join(f"{k} {v:.2f} mm" for k, v in agg["region_motion_p95_mm"].items()), "",
               *non_speech_line,
               "| group | clips | s | gap median / p95 / max (mm) | p/b/m sealed | rest closed | jaw-loudness r |",
               "|---|---|---|---|---|---|---|"]
        for g, a in by_group.items():
            md.append(f"| {g} | {a['clips']} | {a['seconds']} | {a['gap_speech_median_mm']:.1f} / "
                      f"{a['gap_speech_p95_mm']:.1f} / {a['gap_max_mm']:.1f} | {a['bilabials_sealed']}/{a['bilabials_found']} | "
                      f"{100 * a['rest_closed_share']:.0f} % | {a['jaw_loudness_correlation_mean']:.2f} |")
        md += ["", f"![lip gap, aperture, chin and loudness]({png})", ""]
        print(f"{enc}: {agg}", flush=True)
    (out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{args.name}.md").write_text("\n".join(md) + "\n")
    print(f"wrote {out / (args.name + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
