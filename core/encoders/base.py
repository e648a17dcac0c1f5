"""The encoder interface and long-audio chunking shared by all encoders."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

SAMPLES_PER_FRAME = 320  # 16 kHz / 50 Hz


class SpeechEncoder:
    name = "base"
    rate = 50.0
    dim = 0
    # Audio per call, and context kept on each side, so memory stays bounded on long clips.
    chunk_seconds = 30.0
    context_seconds = 2.0
    # Threads encoding chunks at once; > 1 only where the work runs outside the GIL.
    workers = 1

    def frames(self, samples16k: np.ndarray) -> np.ndarray:
        """(T, dim) frames of a short clip in one call."""
        raise NotImplementedError

    def features(self, samples16k: np.ndarray, should_cancel: Callable[[], bool] | None = None) -> np.ndarray:
        """(T, dim) frames for any length; long clips are encoded in overlapping chunks.

        Chunks run on ``workers`` threads (encoders whose work releases the GIL use both cores);
        ``should_cancel`` is asked before each chunk and raises ``Cancelled``.
        """
        x = np.asarray(samples16k, np.float32)
        total = max(1, len(x) // SAMPLES_PER_FRAME)
        chunk = int(self.chunk_seconds * self.rate)
        if total <= chunk + 2 * int(self.context_seconds * self.rate):
            _check_cancel(should_cancel)
            return _fit(self.frames(x), total)
        ctx = int(self.context_seconds * self.rate)
        # (kept frames start, stop) inside (encoded frames a, b)
        pieces = [(s, min(total, s + chunk), max(0, s - ctx), min(total, s + chunk + ctx)) for s in range(0, total, chunk)]

        def encode(piece):
            _check_cancel(should_cancel)
            start, stop, a, b = piece
            return _fit(self.frames(x[a * SAMPLES_PER_FRAME:b * SAMPLES_PER_FRAME]), b - a)[start - a:stop - a]

        out = np.empty((total, self.dim), np.float32)
        if self.workers > 1:
            with ThreadPoolExecutor(self.workers) as pool:
                for (start, stop, _, _), frames in zip(pieces, pool.map(encode, pieces)):
                    out[start:stop] = frames
        else:
            for piece in pieces:
                out[piece[0]:piece[1]] = encode(piece)
        return out


def _check_cancel(should_cancel) -> None:
    if should_cancel is not None and should_cancel():
        from ..errors import Cancelled
        raise Cancelled("Cancelled by the user; nothing was changed.")


def _fit(frames: np.ndarray, n: int) -> np.ndarray:
    """Trim or edge-pad to exactly n frames (encoders may round their length differently)."""
    if len(frames) >= n:
        return frames[:n]
    pad = np.repeat(frames[-1:], n - len(frames), axis=0) if len(frames) else np.zeros((n, frames.shape[1]), frames.dtype)
    return np.concatenate([frames, pad])
