"""One bake in three steps, so inference can run off Blender's main thread.

    prepare(...)  main thread: read and check the object and the audio (bpy, no changes)
    infer(...)    any thread: core's Animator, plus the PCA fit in compact mode (no bpy)
    apply(...)    main thread: write shape keys, the Action and the sound strip (bpy)

Nothing is changed before ``apply``, so an error or a cancel in the first two steps leaves
the scene exactly as it was. ``BakeJob`` runs ``infer`` in a worker thread for the modal
operator; ``run`` does all three in a row for scripts and headless tools.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from . import audio_source, compat
from .engine import compact, errors, limits
from . import engine

MODES = ("PER_FRAME", "COMPACT")


@dataclass
class BakeSettings:
    mode: str = "PER_FRAME"        # "PER_FRAME" | "COMPACT"
    intensity: float = 1.0
    encoder: str = "hama"          # "hama" | "mel" | "wav2vec2" (hama falls back to mel where absent)
    backend: str = "numpy"         # "numpy" | "torch"
    device: str = "cpu"            # torch only: "cpu" | "cuda"
    weights_dir: str = ""          # "" -> the weights bundled with the add-on
    allow_random: bool = False     # True: random-initialised networks when no trained weights are found
    tolerance_mm: float = 0.1      # compact mode: max vertex error in mm on a FLAME-sized head
    tolerance: float = 0.0         # compact mode, mesh units; > 0 overrides tolerance_mm
    max_components: int = 64       # compact mode
    take: str = "main"             # re-baking a take replaces it; other takes stay
    own_action: bool = False       # True: a new Action even if the user's Action is assigned
    allow_large: bool = False      # per-frame mode: write files past PER_FRAME_LIMIT_BYTES
    emotion: str = "neutral"       # 'happy', 'sad:0.6' or keyframes '0:neutral, 2.5:happy:0.8' (core.expression)
    style: float = 0.0             # speaking style: -1 relaxed .. 0 everyday .. +1 precise, energetic
    jaw: float = 1.0               # regional intensities (core.regional)
    lips: float = 1.0
    upper_face: float = 1.0
    upper_face_layer: bool = True  # blinks, brows, cheeks as their own shape keys (core.upper_face)
    seed: int = 0                  # the upper-face layer's random choices (blink times)

    def expression(self):
        return engine.expression.parse(self.emotion, style=self.style)

    def regions(self):
        return engine.regional.Regions(jaw=self.jaw, lips=self.lips, upper_face=self.upper_face)


# Per-frame mode writes one full copy of the mesh per frame: about 64 KB on FLAME (60 KB of
# coordinates plus the key's and its F-curve's overhead; measured 19.4 MB for 300 frames).
PER_FRAME_BYTES = 64_700
PER_FRAME_LIMIT_BYTES = 1_000_000_000   # about 8.6 minutes at 30 fps
# Blender's frame numbers end at MAXFRAME; keys and the sound strip must both fit before it.
MAX_FRAME = 1_048_574


@dataclass
class BakeRequest:
    object_name: str
    neutral: np.ndarray            # (5023, 3) float64
    clip: audio_source.AudioClip
    fps: float
    settings: BakeSettings
    warnings: list = field(default_factory=list)


@dataclass
class BakeOutcome:
    displacements: np.ndarray      # (T, 5023, 3) float32, per-frame mode (None in compact mode)
    compact_basis: object = None   # core.compact.CompactBasis in compact mode
    upper_face: object = None      # core.upper_face.UpperFaceTrack: baked as its own shape keys
    description: str = ""
    trained: bool = False
    encoder: str = ""
    notes: list = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class BakeResult:
    object_name: str
    take: str
    mode: str
    start_frame: int
    frames: int
    fps: float
    shape_keys: int
    trained: bool
    description: str
    max_error: float = 0.0         # compact mode: measured, mesh units
    error_bound: float = 0.0       # compact mode: the bound stated to the user
    warnings: list = field(default_factory=list)
    seconds: float = 0.0
    strip_name: str = ""

    def summary(self) -> str:
        text = (f"Baked {self.frames} frames onto '{self.object_name}' from frame {self.start_frame} "
                f"at {self.fps:g} fps ({self.mode.lower().replace('_', '-')}, {self.shape_keys} shape keys)")
        if self.mode == "COMPACT":
            text += f", max error {self.max_error:.3g} (bound {self.error_bound:.3g})"
        if not self.trained:
            text += " - RANDOM-INITIALISED weights (no trained weights installed): motion is meaningless"
        return text + "."


def read_clip(scene, audio_path: str = "", start_frame=None, strip=None) -> audio_source.AudioClip:
    """The speech to bake: a file (to become a sound strip at ``start_frame``, default the current
    frame), or ``strip``, or the scene's active sound strip. AudioError says what is missing."""
    if audio_path:
        frame = scene.frame_current if start_frame is None else start_frame
        check_start_frame(frame)
        return audio_source.clip_from_file(audio_path, int(frame))
    if strip is None:
        strip, reason = audio_source.active_sound_strip(scene)
        if strip is None:
            raise errors.AudioError(reason)
    return audio_source.clip_from_strip(scene, strip)


def prepare(scene, obj, settings: BakeSettings, audio_path: str = "", start_frame=None, strip=None) -> BakeRequest:
    """Check everything that can be checked before the long part. Changes nothing."""
    if settings.mode not in MODES:
        raise errors.SpeechToFaceError(f"Unknown bake mode '{settings.mode}': use one of {MODES}.")
    limits.check_intensity(settings.intensity)
    try:   # emotion text, style and regional intensities: one clear error before anything runs
        settings.expression()
        settings.regions()
    except ValueError as exc:
        raise errors.SpeechToFaceError(str(exc)) from None
    if settings.mode == "COMPACT" and not settings.tolerance > 0:
        limits.check_tolerance_mm(settings.tolerance_mm)
    from . import bake
    neutral = bake.check_target(obj)
    state, message = engine.weights_state(settings.weights_dir or None, engine.resolve_encoder(settings.encoder)[0])
    if state == "broken":
        raise errors.WeightsError(message)
    if state == "absent" and not settings.allow_random:
        raise errors.WeightsError(f"No trained weights: {message} (random-initialised networks only when "
                                  "asked for: --allow-random / allow_random=True).")
    fps = audio_source.scene_fps(scene)
    limits.check_fps(fps)
    clip = read_clip(scene, audio_path, start_frame, strip)
    frames = engine.framerate.num_frames(clip.seconds, fps)
    check_start_frame(clip.start_frame, frames)
    if settings.mode == "PER_FRAME" and not settings.allow_large:
        size = frames * PER_FRAME_BYTES
        if size > PER_FRAME_LIMIT_BYTES:
            raise errors.SettingsError(
                f"Per-frame mode would write {frames} shape keys, about {size / 1e9:.1f} GB "
                f"(limit {PER_FRAME_LIMIT_BYTES / 1e9:.0f} GB): use compact mode (--mode compact), "
                "or allow the size (--allow-large; allow_large=True in the Python API).")
    return BakeRequest(obj.name, neutral, clip, fps, settings, warnings=list(clip.warnings))


def check_start_frame(frame, frames: int = 1) -> int:
    """The keys (one frame before the first to one after the last) and the strip must fit Blender's frames."""
    if isinstance(frame, bool) or not isinstance(frame, (int, float)) or frame != frame or frame != int(frame):
        raise errors.SettingsError(f"Start frame must be a whole number, got {frame!r}.")
    frame = int(frame)
    last = frame + frames - 1
    if frame < 0 or last + 1 > MAX_FRAME:
        if frames <= 1:
            raise errors.SettingsError(f"Start frame {frame} is out of range: use 0 to {MAX_FRAME - 2} "
                                       f"(Blender's frames end at {MAX_FRAME}).")
        raise errors.SettingsError(
            f"Start frame {frame} is out of range for this clip of {frames} frames: they must end before "
            f"Blender's last frame {MAX_FRAME}; start at most at {MAX_FRAME - frames - 1}.")
    return frame


def infer(request: BakeRequest, progress=None, should_cancel=None) -> BakeOutcome:
    """The long part. Touches no bpy; raises errors.Cancelled when asked to stop."""
    t0 = time.perf_counter()
    s = request.settings
    encoder, note = engine.resolve_encoder(s.encoder)
    notes = [note] if note else []
    if s.backend == "torch" and s.device == "cuda" and not engine.cuda_available():
        raise errors.SpeechToFaceError("CUDA was chosen but torch cannot see a CUDA device here: choose CPU.")
    report = progress or (lambda f: None)
    report(0.0)
    try:
        animator = engine.load_animator(s.weights_dir or None, encoder, s.backend, s.device, s.allow_random)
    except errors.EncoderUnavailable as exc:
        if encoder != "hama":
            raise
        encoder = "mel"  # hama's library failed to load after all: mel runs everywhere
        notes.append(f"{exc} Using the mel front end.")
        animator = engine.load_animator(s.weights_dir or None, encoder, s.backend, s.device, s.allow_random)
    if should_cancel is not None and should_cancel():
        raise errors.Cancelled("Cancelled before inference started.")
    clip = animator.prepare((request.clip.samples, request.clip.rate), request.neutral, request.fps,
                            expression=s.expression(), regions=s.regions())
    track = animator.landmark_track(clip, should_cancel, progress=lambda f: report(0.5 * f))
    outcome = BakeOutcome(displacements=None, description=animator.describe(), trained=bool(animator.trained),
                          encoder=encoder, notes=notes)
    if s.upper_face_layer:   # its own keys, so an animator can rework it without re-baking the lips
        outcome.upper_face = animator.upper_face_track(clip, s.seed, s.intensity, landmarks=track)
    if s.mode == "COMPACT":
        outcome.compact_basis = _fit_compact_streaming(animator, clip, track, s, request.neutral, report,
                                                       should_cancel)
    else:
        out = np.empty((clip.total, engine.flame.NUM_VERTICES, 3), np.float32)
        for start in range(0, clip.total, 256):
            if should_cancel is not None and should_cancel():
                raise errors.Cancelled("Cancelled by the user; nothing was changed.")
            rows = np.arange(start, min(clip.total, start + 256))
            out[rows] = animator.decode(clip, track[rows], rows, s.intensity)
            report(0.5 + 0.5 * rows[-1] / clip.total)
        outcome.displacements = out
    report(1.0)
    outcome.seconds = time.perf_counter() - t0
    return outcome


def _fit_compact_streaming(animator, clip, track, s: BakeSettings, neutral, report, should_cancel):
    """Compact mode in bounded memory: the dense motion is never held whole.

    S2L has run once (``track``: 68 points per frame); S2D decodes the frames the basis is
    fitted on, then every frame again, block by block, for the weights and the exact error.
    """
    tol = s.tolerance if s.tolerance > 0 else (
        compact.default_tolerance(neutral) * s.tolerance_mm / (compact.DEFAULT_TOLERANCE_M * 1000))
    clip.samples = None   # the decoder needs only the landmark track and the silence gate from here
    picked = compact.sample_frames(clip.total)
    sample = animator.decode(clip, track[picked], picked, s.intensity)
    report(0.6)

    whole = len(picked) == clip.total and bool((picked == np.arange(clip.total)).all())

    def blocks():
        for start in range(0, clip.total, 256):
            if should_cancel is not None and should_cancel():
                raise errors.Cancelled("Cancelled by the user; nothing was changed.")
            rows = np.arange(start, min(clip.total, start + 256))
            # a short clip's sample is every frame already: no need to decode it twice
            yield start, sample[rows] if whole else animator.decode(clip, track[rows], rows, s.intensity)

    return compact.fit_compact_stream(sample, blocks, clip.total, tol, s.max_components,
                                      progress=lambda f: report(0.6 + 0.4 * f))


def apply(scene, request: BakeRequest, outcome: BakeOutcome) -> BakeResult:
    """Write the bake. The object is looked up again: the user may have changed it meanwhile."""
    import bpy
    from . import bake
    obj = bpy.data.objects.get(request.object_name)
    if obj is None:
        raise errors.SpeechToFaceError(f"'{request.object_name}' was deleted during the bake.")
    bake.check_target(obj)
    s = request.settings
    clip = request.clip
    cb = outcome.compact_basis
    info = {
        "fps": request.fps, "audio": clip.source, "intensity": s.intensity,
        "description": outcome.description, "trained": outcome.trained,
        "emotion": s.emotion, "style": s.style, "jaw": s.jaw, "lips": s.lips, "upper_face": s.upper_face,
        "upper_face_layer": s.upper_face_layer, "seed": s.seed,
    }
    if cb is not None:
        info.update(max_error=cb.max_error, error_bound=cb.bound, tolerance=cb.tolerance)
    strip_name = ""
    strip = None
    previous = bake.takes(obj).get(bake.take_name(s.take), {})
    if clip.new_strip_path:
        strip = audio_source.add_strip_for(scene, clip)
        strip_name = strip.name
        info["created_strip"] = strip_name
    try:
        record = bake.write_bake(
            obj, start_frame=clip.start_frame,
            displacements=outcome.displacements if cb is None else None, compact_basis=cb,
            upper_face=outcome.upper_face, take=s.take, own_action=s.own_action, info=info)
    except Exception:
        if strip is not None:
            compat.remove_strip(scene, strip)
        raise
    if strip is not None and previous.get("created_strip"):
        # Re-baking from a file: the strip the previous bake added makes way for the new one.
        old = next((x for x in compat.sound_strips(scene) if x.name == previous["created_strip"]), None)
        if old is not None and old != strip:
            compat.remove_strip(scene, old)
    frames = record["frames"]
    bake.cover_frame_range(scene, clip.start_frame, frames)
    warnings = list(request.warnings) + list(outcome.notes)
    return BakeResult(
        object_name=obj.name, take=bake.take_name(s.take), mode=record["mode"],
        start_frame=clip.start_frame, frames=frames, fps=request.fps, shape_keys=len(record["keys"]),
        trained=outcome.trained, description=outcome.description,
        max_error=cb.max_error if cb is not None else 0.0, error_bound=cb.bound if cb is not None else 0.0,
        warnings=warnings, seconds=outcome.seconds, strip_name=strip_name)


def run(scene, obj, settings: BakeSettings, audio_path: str = "", start_frame=None, strip=None,
        progress=None, should_cancel=None) -> BakeResult:
    """prepare + infer + apply on the calling thread (scripts, headless tools, tests)."""
    t0 = time.perf_counter()
    request = prepare(scene, obj, settings, audio_path, start_frame, strip)
    outcome = infer(request, progress, should_cancel)
    result = apply(scene, request, outcome)
    result.seconds = time.perf_counter() - t0
    return result


class BakeJob:
    """``infer`` in a daemon thread; the main thread polls ``progress``/``done`` and may cancel."""

    def __init__(self, request: BakeRequest):
        self.request = request
        self.progress = 0.0
        self.outcome: BakeOutcome | None = None
        self.error: BaseException | None = None
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._work, name="speech-to-face-bake", daemon=True)

    def start(self) -> "BakeJob":
        self._thread.start()
        return self

    def _work(self):
        try:
            self.outcome = infer(self.request, self._set_progress, self._cancel.is_set)
        except BaseException as exc:  # reported on the main thread
            self.error = exc

    def _set_progress(self, fraction: float):
        self.progress = float(min(1.0, max(0.0, fraction)))

    def cancel(self):
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout=None) -> bool:
        self._thread.join(timeout)
        return self.done
