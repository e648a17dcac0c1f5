"""Speech + neutral FLAME head -> per-frame vertices: the paper's method end to end.

    audio -> speech encoder -> S2L -> 68 landmark displacements (template frame)
          -> S2D -> 5023 vertex displacements -> user frame (alignment) -> neutral + d

The speech encoder runs once over the clip; long clips then go through S2L in overlapping
chunks (the BiLSTM sees ``context_seconds`` of audio on each side of every chunk) and
``Animator.stream`` yields blocks of frames, so memory stays bounded whatever the length.
``Animator.animate`` collects the blocks into one ``Animation``. The stages are also callable
one by one (``prepare``, ``landmark_track``, ``decode``) so a caller can keep the small landmark
track (68 points per frame) and decode frames more than once (the compact bake's two streaming
passes) without holding every dense frame.

In digital silence the face rests: ``core.voice_activity`` fades the displacements to zero
away from sound, in every path; in a real recording's audible pauses it closes the mouth that
S2L left open (``Animator.pause_rest``). Networks with a seal head also get their lips sealed
where that head finds a p/b/m (``core.lip_seal``, ``Animator.lip_seal``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import alignment, audio as audio_io, expression as expression_mod, flame, framerate, limits, regional
from . import lip_aperture, lip_seal, upper_face as upper_face_layer, voice_activity, weights
from .encoders import get_encoder
from .encoders.base import SAMPLES_PER_FRAME
from .errors import Cancelled, WeightsError
from .numpy_runtime import NumpyS2D, NumpyS2L, random_state, s2d_parameter_shapes, s2l_parameter_shapes

# Untrained S2L shapes per encoder (trained weights carry their own config).
ENCODER_CONFIGS = {
    "hama": dict(encoder="hama", input_dim=191),
    "mel": dict(encoder="mel", input_dim=80, frontend_channels=64),
    "wav2vec2": dict(encoder="wav2vec2", input_dim=768),
}


@dataclass
class Animation:
    displacements: np.ndarray   # (T, 5023, 3) float32, user space
    neutral: np.ndarray         # (5023, 3) float32, user space
    fps: float
    duration_seconds: float
    trained: bool
    description: str
    upper_face: "upper_face_layer.UpperFaceTrack | None" = None   # included in displacements

    @property
    def vertices(self) -> np.ndarray:
        return self.neutral[None] + self.displacements

    @property
    def landmarks(self) -> np.ndarray:
        return flame.landmarks(self.vertices)

    @property
    def num_frames(self) -> int:
        return len(self.displacements)


class Animator:
    """Loaded networks and encoder; reuse one Animator for many clips."""

    chunk_seconds = 30.0
    context_seconds = 3.0
    s2d_batch = 32
    pause_rest = True       # close the mouth in audible pauses (core.voice_activity.pause_weights)
    lip_seal = True         # seal the lips where S2L's seal head finds a p/b/m (core.lip_seal; such networks only)

    def __init__(self, encoder, s2l, s2d, *, backend: str, trained: bool, source: str):
        self.encoder, self.s2l, self.s2d = encoder, s2l, s2d
        self.backend, self.trained, self.source = backend, trained, source

    @classmethod
    def load(cls, weights_dir=None, encoder: str = "hama", backend: str = "numpy", device: str = "cpu",
             allow_random: bool = False, encoder_options: dict | None = None, seed: int = 0) -> "Animator":
        """Load S2L (for ``encoder``) and S2D from ``weights_dir`` (default: bundled weights/).

        With ``allow_random`` and no weights for this encoder, random-initialised networks
        are built instead and the Animator says so (``trained`` is False).
        """
        if encoder not in ENCODER_CONFIGS:
            raise ValueError(f"Unknown encoder '{encoder}'; choose one of {', '.join(ENCODER_CONFIGS)}.")
        if backend not in ("numpy", "torch"):
            raise ValueError(f"Unknown back end '{backend}'; choose 'numpy' or 'torch'.")
        directory = Path(weights_dir) if weights_dir is not None else weights.DEFAULT_DIR
        s2l_name = f"s2l_{encoder}"
        manifest = weights.read_manifest(directory)
        if weights.has_networks(directory, s2l_name, "s2d", manifest=manifest):
            s2l_cfg, s2l_state, s2l_entry = weights.load_network(directory, s2l_name, "s2l", manifest)
            s2d_cfg, s2d_state, s2d_entry = weights.load_network(directory, "s2d", "s2d", manifest)
            trained = bool(s2l_entry.get("trained")) and bool(s2d_entry.get("trained"))
            source = weights.describe_source(directory)
        elif allow_random:
            s2l_cfg, s2d_cfg = dict(ENCODER_CONFIGS[encoder]), {}
            s2l_state = random_state(s2l_parameter_shapes(s2l_cfg), seed)
            s2d_state = random_state(s2d_parameter_shapes(s2d_cfg), seed + 1)
            trained, source = False, "RANDOM-INITIALISED weights (no trained weights found)"
        else:
            raise WeightsError(
                f"No trained weights for the '{encoder}' encoder in {directory} "
                f"(expected {s2l_name} and s2d in {weights.MANIFEST})."
            )
        enc = get_encoder(encoder, **(encoder_options or {}))
        if backend == "numpy":
            s2l, s2d = NumpyS2L(s2l_cfg, s2l_state), NumpyS2D(s2d_cfg, s2d_state)
        else:
            from .torch_runtime import TorchS2D, TorchS2L
            s2l, s2d = TorchS2L(s2l_cfg, s2l_state, device), TorchS2D(s2d_cfg, s2d_state, device)
        return cls(enc, s2l, s2d, backend=backend, trained=trained, source=source)

    def describe(self) -> str:
        state = "trained" if self.trained else "untrained"
        return f"encoder={self.encoder.name}, back end={self.backend}, {state}: {self.source}"

    # ------------------------------------------------------------------------------ stages

    def landmark_displacements(self, samples16k: np.ndarray, fps: float,
                               should_cancel: Callable[[], bool] | None = None, expression=None,
                               features: np.ndarray | None = None) -> np.ndarray:
        """S2L on a whole clip: (T, 68, 3) displacements in the template frame.

        ``features``: the encoder's output for these samples, when already computed."""
        total = framerate.num_frames(audio_io.duration_seconds(samples16k), fps)
        codes = self._codes(expression, total, fps)
        return np.concatenate([block for _, block, _ in self._s2l_chunks(samples16k, fps, should_cancel, codes,
                                                                         features)])

    @property
    def condition_dim(self) -> int:
        return int(self.s2l.config.get("condition_dim", 0))

    def _codes(self, expression, total: int, fps: float):
        """Per-frame control codes for S2L, or None for networks trained without them."""
        expr = expression_mod.parse(expression) if isinstance(expression, str) else expression
        if not self.condition_dim:
            if expr is not None and not expr.is_neutral:
                raise WeightsError("These S2L weights were trained without emotion and style control: "
                                   "use neutral emotion and style 0, or weights trained with codes.")
            return None
        expr = expr or expression_mod.Expression()
        return expr.codes(total, fps)

    def _s2l_chunks(self, samples16k, fps, should_cancel=None, codes=None,
                    features=None) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        """(first frame, landmark displacements, seal logits or None) of each S2L window."""
        total = framerate.num_frames(audio_io.duration_seconds(samples16k), fps)
        chunk = max(1, int(round(self.chunk_seconds * fps)))
        ctx = int(round(self.context_seconds * fps))
        if total <= chunk + 2 * ctx:
            windows = [(0, total, 0, total)]
        else:  # (kept frames start, stop) inside (window start, stop) with context around
            windows = [(s, min(total, s + chunk), max(0, s - ctx), min(total, s + chunk + ctx))
                       for s in range(0, total, chunk)]
        # The encoder runs once over the whole clip (its own chunks, both cores); each S2L window
        # takes the encoder frames that cover it, and is told where frame a falls in them.
        if features is None:
            features = self.encoder.features(samples16k, should_cancel=should_cancel)
        for start, stop, a, b in windows:
            _check_cancel(should_cancel)
            e0 = min(int(a / fps * audio_io.SAMPLE_RATE) // SAMPLES_PER_FRAME, len(features) - 1)
            e1 = int(np.ceil(b / fps * audio_io.SAMPLE_RATE / SAMPLES_PER_FRAME))
            offset = a / fps - e0 * SAMPLES_PER_FRAME / audio_io.SAMPLE_RATE
            code = None if codes is None else codes[a:b]
            out = self.s2l(features[e0:max(e1, e0 + 1)], b - a, fps, offset, code, return_seal=self.has_seal_head)
            lmk, seal = out if self.has_seal_head else (out, None)
            yield start, lmk[start - a:stop - a], None if seal is None else seal[start - a:stop - a]

    @property
    def has_seal_head(self) -> bool:
        return bool(self.s2l.config.get("seal_head", False))

    def stream(self, audio, neutral_vertices, fps: float = 30.0, intensity: float = 1.0,
               sample_rate: int | None = None,
               progress: Callable[[float], None] | None = None,
               should_cancel: Callable[[], bool] | None = None, *,
               expression=None, regions: regional.Regions | None = None,
               upper_face: bool = True, seed: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (first_frame, displacements block (n, 5023, 3) in user space) until the clip ends.

        ``expression``: core.expression.Expression, or text for expression.parse ('happy:0.7',
        '0:neutral, 2:sad'); None is neutral emotion and default speaking style. ``regions``:
        core.regional.Regions (jaw, lips, upper-face intensities; default all 1). ``upper_face``
        adds the upper-face layer (blinks, brows, cheeks; ``core.upper_face``), seeded by ``seed``
        and scaled by the upper-face intensity (and, like the lips, ``intensity``)."""
        job = self.prepare(audio, neutral_vertices, fps, sample_rate, expression, regions)
        upper = _UpperFace(seed, job.regions.upper_face) if upper_face else None
        return self._stream(job, limits.check_intensity(intensity), progress, should_cancel, upper)

    def animate(self, audio, neutral_vertices, fps: float = 30.0, intensity: float = 1.0,
                sample_rate: int | None = None,
                progress: Callable[[float], None] | None = None,
                should_cancel: Callable[[], bool] | None = None, *,
                expression=None, regions: regional.Regions | None = None,
                upper_face: bool = True, seed: int = 0) -> Animation:
        """Whole animation of a clip; see ``stream`` for bounded memory on very long audio.
        With ``upper_face`` the returned ``Animation.upper_face`` holds that layer as shape keys."""
        job = self.prepare(audio, neutral_vertices, fps, sample_rate, expression, regions)
        intensity = limits.check_intensity(intensity)
        upper = _UpperFace(seed, job.regions.upper_face) if upper_face else None
        out = np.empty((job.total, flame.NUM_VERTICES, 3), np.float32)
        for start, block in self._stream(job, intensity, progress, should_cancel, upper):
            out[start:start + len(block)] = block
        return Animation(out, job.neutral.astype(np.float32), float(fps),
                         audio_io.duration_seconds(job.samples), self.trained, self.describe(),
                         upper.track if upper is not None else None)

    def upper_face_track(self, job: "Job", seed: int = 0, intensity: float = 1.0, landmarks=None,
                         should_cancel: Callable[[], bool] | None = None) -> "upper_face_layer.UpperFaceTrack":
        """The upper-face layer alone, as shape keys in the head's frame: bake it beside the lips
        (``landmark_track`` + ``decode``). ``landmarks``: the clip's S2L track if already run (its
        lip closures steer the blinks); S2L runs here otherwise."""
        upper = _UpperFace(seed, job.regions.upper_face)
        lmk = self.landmark_track(job, should_cancel) if landmarks is None else landmarks
        self._attach_upper_face(job, lmk, upper, intensity)
        return upper.track

    def _attach_upper_face(self, job: "Job", landmarks: np.ndarray, upper: "_UpperFace", intensity: float) -> None:
        controls, _ = upper_face_layer.upper_face_motion(
            job.samples, job.fps, job.total, seed=upper.seed,
            # the lips as shown (gated in silence): cheeks follow what the viewer sees
            lip_gap=upper_face_layer.inner_lip_gap(landmarks) * job.gate, intensity=upper.intensity)
        # built on this head (its own eyes), mapped back like S2D's output
        _, keys = upper_face_layer.shape_keys(job.similarity.to_canonical(job.neutral))
        keys_user = job.similarity.displacements_from_canonical(keys.astype(np.float64)) * intensity
        upper.track = upper_face_layer.make_track(controls, keys_user)

    def _stream(self, job: "Job", intensity, progress, should_cancel, upper: "_UpperFace | None" = None):
        # S2L runs over the whole clip first (816 bytes a frame): the pause rest takes its mouth
        # pattern from the whole track, and blinks avoid lip closures anywhere in the clip.
        lmk = self.landmark_track(job, should_cancel)
        if upper is not None:
            self._attach_upper_face(job, lmk, upper, intensity)
        for i in range(0, len(lmk), self.s2d_batch):
            _check_cancel(should_cancel)
            rows = lmk[i:i + self.s2d_batch]
            block = self.decode(job, rows, np.arange(i, i + len(rows)), intensity)
            if upper is not None:
                block = block + upper.track.displacements(i, i + len(rows))
            yield i, block.astype(np.float32, copy=False)
            if progress:
                progress((i + len(rows)) / job.total)

    def landmark_track(self, job: "Job", should_cancel=None, progress=None) -> np.ndarray:
        """S2L over the whole clip: (T, 68, 3) float32 landmark displacements (template frame),
        with the mouth at rest in audible pauses (unless ``pause_rest`` is off) and the lips
        sealed where the seal head finds a p/b/m (unless ``lip_seal`` is off)."""
        out = np.empty((job.total, flame.NUM_LANDMARKS, 3), np.float32)
        seal = np.zeros(job.total, np.float32) if self.has_seal_head else None
        for start, block, block_seal in self._s2l_chunks(job.samples, job.fps, should_cancel, job.codes):
            out[start:start + len(block)] = block
            if seal is not None:
                seal[start:start + len(block)] = block_seal
            if progress:
                progress((start + len(block)) / job.total)
        close, press = np.zeros(job.total), None
        if self.pause_rest and job.pause is not None:
            close = np.maximum(close, job.pause)
        if self.lip_seal and seal is not None:
            close, press = np.maximum(close, lip_seal.seal_weights(seal)), lip_seal.press(seal)
        # one pass for both: the opening pattern is measured once, on S2L's own track
        return lip_aperture.remove_opening(out, close, press)

    def decode(self, job: "Job", landmarks: np.ndarray, frames: np.ndarray, intensity: float = 1.0) -> np.ndarray:
        """S2D for some frames of a landmark track -> (n, 5023, 3) float32 user-space displacements.

        ``frames`` are the indices of those frames in the clip (the silence gate depends on time).
        The regional intensities apply to the landmarks first, so S2D densifies what they leave.
        """
        out = np.empty((len(landmarks), flame.NUM_VERTICES, 3), np.float32)
        for i in range(0, len(landmarks), self.s2d_batch):
            dense = self.s2d(regional.scale(landmarks[i:i + self.s2d_batch], job.regions))
            block = job.similarity.displacements_from_canonical(dense.astype(np.float64))
            g = job.gate[np.asarray(frames[i:i + self.s2d_batch])].astype(np.float64) * intensity
            out[i:i + len(block)] = block * g[:, None, None]
        return out

    def animate_many(self, audios, neutral_vertices, fps: float = 30.0, intensity: float = 1.0) -> list[Animation]:
        """Batch use: one Animation per clip, sharing the loaded networks."""
        return [self.animate(a, neutral_vertices, fps, intensity) for a in audios]

    def prepare(self, audio, neutral_vertices, fps, sample_rate=None, expression=None, regions=None) -> "Job":
        """Load and check the inputs of one clip (cheap next to the networks)."""
        if isinstance(fps, bool) or not (isinstance(fps, (int, float)) and np.isfinite(fps) and fps > 0):
            raise limits.SettingsError(f"Frame rate must be a positive number, got {fps!r}.")
        fps = limits.check_fps(fps)
        neutral = flame.validate_mesh(neutral_vertices, what="neutral head")
        if isinstance(audio, tuple):
            samples = audio_io.load_audio(audio[0], audio[1])
        else:
            samples = audio_io.load_audio(audio, sample_rate)
        total = framerate.num_frames(audio_io.duration_seconds(samples), fps)
        codes = self._codes(expression, total, fps)
        gate = voice_activity.gate(samples, audio_io.SAMPLE_RATE, fps, total)
        pause = voice_activity.pause_weights(samples, audio_io.SAMPLE_RATE, fps, total)
        samples = audio_io.normalise_loudness(samples)
        return Job(samples, neutral, alignment.align_to_template(neutral), float(fps), total, gate,
                   codes, regions or regional.Regions(), pause)


@dataclass
class _UpperFace:
    seed: int
    intensity: float
    track: "upper_face_layer.UpperFaceTrack | None" = None


@dataclass
class Job:
    samples: np.ndarray          # 16 kHz mono, loudness-normalised
    neutral: np.ndarray
    similarity: alignment.Similarity
    fps: float
    total: int                   # frames
    gate: np.ndarray             # (total,) voice-activity gate in [0, 1]
    codes: np.ndarray | None = None     # (total, CODE_DIM) S2L control codes, None without
    regions: regional.Regions = regional.Regions()
    pause: np.ndarray | None = None     # (total,) audible-pause weights in [0, 1] (voice_activity)


def _check_cancel(should_cancel) -> None:
    if should_cancel is not None and should_cancel():
        raise Cancelled("Cancelled by the user; nothing was changed.")


def animate(audio, neutral_vertices, fps: float = 30.0, intensity: float = 1.0, *, encoder: str = "hama",
            backend: str = "numpy", weights_dir=None, allow_random: bool = False, **kwargs) -> Animation:
    """One-call convenience: load the networks and animate one clip."""
    animator = Animator.load(weights_dir, encoder=encoder, backend=backend, allow_random=allow_random)
    return animator.animate(audio, neutral_vertices, fps, intensity, **kwargs)
