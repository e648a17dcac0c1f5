"""Where the add-on meets ``core``: the import, the cached Animator, and what this machine can run.

Nothing in this module touches ``bpy``, so it is safe to call from the worker thread.
"""

from __future__ import annotations

import importlib
import importlib.util
import platform
import threading
from pathlib import Path

try:  # the extension zip vendors core inside the package (speech_to_face/core)
    from . import core  # type: ignore[attr-defined]
except ImportError:  # a development checkout: the repository root is on sys.path
    import core  # type: ignore[no-redef]

errors = importlib.import_module(core.__name__ + ".errors")
flame = importlib.import_module(core.__name__ + ".flame")
meshio = importlib.import_module(core.__name__ + ".meshio")
compact = importlib.import_module(core.__name__ + ".compact")
weights = importlib.import_module(core.__name__ + ".weights")
limits = importlib.import_module(core.__name__ + ".limits")
audio = importlib.import_module(core.__name__ + ".audio")
framerate = importlib.import_module(core.__name__ + ".framerate")
expression = importlib.import_module(core.__name__ + ".expression")
regional = importlib.import_module(core.__name__ + ".regional")

CORE_DIR = Path(core.__file__).resolve().parent
BUNDLED_WEIGHTS = CORE_DIR.parent / "weights"

_lock = threading.Lock()
_animators: dict = {}
_capabilities: dict = {}


def pipeline():
    return importlib.import_module(core.__name__ + ".pipeline")


def weights_dir_or_bundled(weights_dir) -> Path:
    return Path(weights_dir) if weights_dir else BUNDLED_WEIGHTS


def weights_state(weights_dir=None, encoder: str = "hama") -> tuple[str, str]:
    """("present" | "absent" | "broken", message) - cheap enough for the panel (manifest only).

    File hashes are checked when the networks load (Animator.load), not on every redraw.
    """
    directory = weights_dir_or_bundled(weights_dir)
    if weights_dir and not directory.is_dir():
        return "broken", f"Weights folder not found: {directory}"
    try:
        ok = weights.has_networks(directory, f"s2l_{encoder}", "s2d")
    except errors.WeightsError as exc:
        return "broken", str(exc)
    if ok:
        return "present", weights.describe_source(directory)
    return "absent", f"no trained weights for the {encoder} encoder in {directory}"


def hama_available() -> bool:
    """hama's recogniser runs wherever its wheel is installed: core reads the wheel's weights with
    numpy (hama's native library, Linux and macOS only, is not needed)."""
    if "hama" not in _capabilities:
        hama = importlib.import_module(core.__name__ + ".encoders.hama")
        _capabilities["hama"] = hama.availability("numpy")[0]
    return _capabilities["hama"]


def torch_available() -> bool:
    if "torch" not in _capabilities:
        _capabilities["torch"] = importlib.util.find_spec("torch") is not None
    return _capabilities["torch"]


def cuda_available() -> bool:
    """Imports torch (slow, once): only asked when the user picked the torch back end."""
    if "cuda" not in _capabilities:
        ok = False
        if torch_available():
            try:
                import torch
                ok = bool(torch.cuda.is_available())
            except Exception:
                ok = False
        _capabilities["cuda"] = ok
    return _capabilities["cuda"]


def resolve_encoder(encoder: str) -> tuple[str, str]:
    """(encoder actually used, note for the user) - hama falls back to mel where it cannot run."""
    if encoder == "hama" and not hama_available():
        return "mel", (f"hama's recogniser weights are not installed on {platform.system()} {platform.machine()}: "
                       "using the mel front end")
    return encoder, ""


def load_animator(weights_dir=None, encoder="hama", backend="numpy", device="cpu", allow_random=True):
    """Animator.load with a cache: weights load once per session and settings."""
    directory = weights_dir_or_bundled(weights_dir)
    manifest = directory / weights.MANIFEST
    stamp = manifest.stat().st_mtime_ns if manifest.is_file() else 0  # reload after weights change
    key = (str(directory), stamp, encoder, backend, device, bool(allow_random))
    with _lock:
        animator = _animators.get(key)
        if animator is None:
            if weights_dir and not Path(weights_dir).is_dir():
                raise errors.WeightsError(f"Weights folder not found: {weights_dir}")
            animator = pipeline().Animator.load(
                weights_dir=weights_dir or None, encoder=encoder, backend=backend,
                device=device, allow_random=allow_random)
            _animators[key] = animator
        return animator


def clear_cache() -> None:
    with _lock:
        _animators.clear()
