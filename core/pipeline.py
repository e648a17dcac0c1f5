"""Speech + neutral FLAME head -> per-frame vertices: the paper's method end to end.

    audio -> speech encoder -> S2L -> 68 landmark displacements (template frame)
          -> S2D -> 5023 vertex displacements -> user frame (alignment) -> neutral + d

The speech encoder runs once over the clip; long clips then go through S2L in overlapping
chunks (the BiLSTM sees ``context_seconds`` of audio on each side of every chunk) and
``Animator.stream`` yields blocks of frames, so memory stays bounded whatever the length. ``Animator.animate`` collects the blocks into one ``Animation``.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import alignment, audio as audio_io, flame, framerate, weights
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
    s2d_workers = 2

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
                               should_cancel: Callable[[], bool] | None = None,
                               features: np.ndarray | None = None) -> np.ndarray:
        """S2L on a whole clip: (T, 68, 3) displacements in the template frame.

        ``features``: the encoder's output for these samples, when already computed."""
        return np.concatenate([block for _, block in self._s2l_chunks(samples16k, fps, should_cancel, features)])

    def _s2l_chunks(self, samples16k, fps, should_cancel=None, features=None) -> Iterator[tuple[int, np.ndarray]]:
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
            yield start, self.s2l(features[e0:max(e1, e0 + 1)], b - a, fps, offset)[start - a:stop - a]

    def stream(self, audio, neutral_vertices, fps: float = 30.0, intensity: float = 1.0,
               sample_rate: int | None = None,
               progress: Callable[[float], None] | None = None,
               should_cancel: Callable[[], bool] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (first_frame, displacements block (n, 5023, 3) in user space) until the clip ends."""
        job = self._prepare(audio, neutral_vertices, fps, sample_rate)
        return self._stream(job, intensity, progress, should_cancel)

    def animate(self, audio, neutral_vertices, fps: float = 30.0, intensity: float = 1.0,
                sample_rate: int | None = None,
                progress: Callable[[float], None] | None = None,
                should_cancel: Callable[[], bool] | None = None) -> Animation:
        """Whole animation of a clip; see ``stream`` for bounded memory on very long audio."""
        job = self._prepare(audio, neutral_vertices, fps, sample_rate)
        out = np.empty((job.total, flame.NUM_VERTICES, 3), np.float32)
        for start, block in self._stream(job, intensity, progress, should_cancel):
            out[start:start + len(block)] = block
        return Animation(out, job.neutral.astype(np.float32), float(fps),
                         audio_io.duration_seconds(job.samples), self.trained, self.describe())

    def _stream(self, job: "_Job", intensity, progress, should_cancel):
        def decode(lmk: np.ndarray) -> np.ndarray:
            dense = self.s2d(lmk)
            block = job.similarity.displacements_from_canonical(dense.astype(np.float64)) * intensity
            return block.astype(np.float32)

        # S2D batches run on `s2d_workers` threads (numpy and torch release the GIL), in order,
        # with a few batches in flight so memory stays bounded.
        done, pending = 0, deque()
        with ThreadPoolExecutor(self.s2d_workers) as pool:
            for start, lmk in self._s2l_chunks(job.samples, job.fps, should_cancel):
                for i in range(0, len(lmk), self.s2d_batch):
                    _check_cancel(should_cancel)
                    pending.append((start + i, pool.submit(decode, lmk[i:i + self.s2d_batch])))
                    while len(pending) > 2 * self.s2d_workers:
                        first, job_block = pending.popleft()
                        block = job_block.result()
                        done += len(block)
                        yield first, block
                        if progress:
                            progress(done / job.total)
            while pending:
                _check_cancel(should_cancel)
                first, job_block = pending.popleft()
                block = job_block.result()
                done += len(block)
                yield first, block
                if progress:
                    progress(done / job.total)

    def animate_many(self, audios, neutral_vertices, fps: float = 30.0, intensity: float = 1.0) -> list[Animation]:
        """Batch use: one Animation per clip, sharing the loaded networks."""
        return [self.animate(a, neutral_vertices, fps, intensity) for a in audios]

    def _prepare(self, audio, neutral_vertices, fps, sample_rate) -> "_Job":
        if isinstance(fps, bool) or not (isinstance(fps, (int, float)) and np.isfinite(fps) and fps > 0):
            raise ValueError(f"Frame rate must be a positive number, got {fps!r}.")
        if isinstance(audio, tuple):
            samples = audio_io.load_audio(audio[0], audio[1])
        else:
            samples = audio_io.load_audio(audio, sample_rate)
        samples = audio_io.normalise_loudness(samples)
        neutral = flame.validate_mesh(neutral_vertices, what="neutral head")
        total = framerate.num_frames(audio_io.duration_seconds(samples), fps)
        return _Job(samples, neutral, alignment.align_to_template(neutral), float(fps), total)


@dataclass
class _Job:
    samples: np.ndarray
    neutral: np.ndarray
    similarity: alignment.Similarity
    fps: float
    total: int


def _check_cancel(should_cancel) -> None:
    if should_cancel is not None and should_cancel():
        raise Cancelled("Cancelled by the user; nothing was changed.")


def animate(audio, neutral_vertices, fps: float = 30.0, intensity: float = 1.0, *, encoder: str = "hama",
            backend: str = "numpy", weights_dir=None, allow_random: bool = False, **kwargs) -> Animation:
    """One-call convenience: load the networks and animate one clip."""
    animator = Animator.load(weights_dir, encoder=encoder, backend=backend, allow_random=allow_random)
    return animator.animate(audio, neutral_vertices, fps, intensity, **kwargs)
