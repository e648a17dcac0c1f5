"""Network weight files and their manifest.

One ``.npz`` per network holds every parameter under its torch ``state_dict`` name plus the
network's config, so both back ends (torch and the numpy runtime) load the same file.
``manifest.json`` beside them records, per network: file, sha256, kind, config, front end,
whether it is trained (with the evidence: epochs, validation figures and the digest of the
training log under ``logs/``), a description of its training data, and the FLAME topology hash
the weights were made for. Loading checks all of these and fails with a WeightsError that says
what to do.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from . import flame
from .errors import WeightsError

# In the repository and in the extension zip alike, weights/ sits beside core/.
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "weights"
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def topology_sha256() -> str:
    """Identifies the mesh the weights are for: FLAME faces and the landmark embedding."""
    topo = flame.load_topology()
    h = hashlib.sha256()
    for arr in (topo.faces, topo.lmk_face_idx, topo.lmk_b_coords):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def read_manifest(directory) -> dict:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return {"format": FORMAT_VERSION, "networks": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WeightsError(f"The weights manifest {path} is unreadable ({exc}); reinstall the weights.") from None
    if not isinstance(manifest, dict) or "networks" not in manifest:
        raise WeightsError(f"The weights manifest {path} has no 'networks' table.")
    return manifest


def has_networks(directory, *names: str, manifest: dict | None = None) -> bool:
    """Whether the manifest lists every one of ``names`` (files are checked when they load)."""
    return set(names) <= set((manifest or read_manifest(directory))["networks"])


def describe_source(directory) -> str:
    """How reports and the panel name a weights folder: the bundled one without a machine path."""
    directory = Path(directory)
    return "the bundled weights" if directory.resolve() == DEFAULT_DIR else f"weights from {directory}"


# What a network marked ``trained`` must carry in the manifest: the epochs behind it, its
# validation figures and the digest of the training log they come from (written by the trainer).
TRAINING_EVIDENCE = ("epochs", "validation", "log", "log_sha256")


def missing_training_evidence(entry: dict) -> list:
    """The evidence fields a ``trained`` manifest entry lacks (empty when complete)."""
    missing = [k for k in TRAINING_EVIDENCE if k not in entry]
    if "epochs" in entry and not (isinstance(entry["epochs"], int) and entry["epochs"] >= 1):
        missing.append("epochs >= 1")
    if "validation" in entry and not {"loss", "LE_mm", "DE_mm", "epoch"} <= set(entry["validation"]):
        missing.append("validation loss, LE_mm, DE_mm and epoch")
    return missing


def read_training_log(directory, entry: dict) -> dict:
    """The training log a manifest entry names, after checking its digest."""
    path = Path(directory) / entry["log"]
    if not path.is_file():
        raise WeightsError(f"Training log missing: {path}.")
    if file_sha256(path) != entry["log_sha256"]:
        raise WeightsError(f"Training log {path.name} differs from the digest in the manifest.")
    return json.loads(path.read_text(encoding="utf-8"))


def save_network(directory, name: str, kind: str, config: dict, state: dict, *, front_end: str,
                 trained: bool, training_data: str, extra: dict | None = None) -> Path:
    """Write ``name.npz`` and record it in the manifest (replacing a previous entry).

    ``trained=True`` needs the evidence in ``extra`` (TRAINING_EVIDENCE): the flag alone proves nothing.
    """
    if trained:
        missing = missing_training_evidence(extra or {})
        if missing:
            raise ValueError(f"Network '{name}' marked trained without its evidence: {', '.join(missing)}.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.npz"
    arrays = {k: np.asarray(v, np.float32) for k, v in state.items()}
    arrays["__config__"] = np.array(json.dumps(config, sort_keys=True))
    np.savez_compressed(path, **arrays)
    manifest = read_manifest(directory)
    manifest["format"] = FORMAT_VERSION
    manifest["networks"][name] = {
        "file": path.name,
        "sha256": file_sha256(path),
        "kind": kind,
        "config": config,
        "front_end": front_end,
        "trained": bool(trained),
        "training_data": training_data,
        "topology_sha256": topology_sha256(),
        **(extra or {}),
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def load_network(directory, name: str, kind: str, manifest: dict | None = None) -> tuple[dict, dict, dict]:
    """(config, state, manifest entry) of a network, after checking hash, kind and topology.

    ``manifest``: the directory's manifest when the caller has already read it.
    """
    directory = Path(directory)
    entry = (manifest or read_manifest(directory))["networks"].get(name)
    if entry is None:
        raise WeightsError(f"No '{name}' network in {directory / MANIFEST}.")
    path = directory / entry["file"]
    if not path.is_file():
        raise WeightsError(f"Weights file missing: {path}. Reinstall the add-on or restore weights/.")
    if file_sha256(path) != entry["sha256"]:
        raise WeightsError(f"Weights file {path.name} is corrupt (sha256 differs from the manifest).")
    if entry.get("kind") != kind:
        raise WeightsError(f"{path.name} holds a '{entry.get('kind')}' network, expected '{kind}'.")
    if entry.get("topology_sha256") != topology_sha256():
        raise WeightsError(f"{path.name} was made for another mesh topology than FLAME's.")
    try:
        with np.load(path, allow_pickle=False) as data:
            config = json.loads(str(data["__config__"]))
            state = {k: data[k] for k in data.files if k != "__config__"}
    except Exception as exc:
        raise WeightsError(f"Cannot read {path.name}: {exc}") from None
    return config, state, entry
