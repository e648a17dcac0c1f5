"""Shared helpers for the add-on and tool tests (bpy 5.0.1 wheel): audio, scenes, snapshots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HEAD = ROOT / "core" / "assets" / "heads" / "sample_neutral.ply"
PYTHON = sys.executable
NO_WEIGHTS = "/nonexistent-speech-to-face-weights"  # never exists: random nets, said so


def import_bpy():
    """The bpy module, or skip the calling test module when it is not installed.

    In CI (``CI=true``) or with ``pytest --require-bpy`` a missing bpy is a failure instead: the
    add-on tests must not pass by not running.
    """
    import pytest
    try:
        import bpy
    except ImportError as exc:
        if os.environ.get("SPEECH_TO_FACE_REQUIRE_BPY") == "1":
            pytest.fail(f"bpy cannot be imported ({exc}) but the add-on tests are required here "
                        "(CI=true or --require-bpy): install the bpy wheel (requirements.txt).", pytrace=False)
        pytest.skip(f"bpy not installed ({exc})", allow_module_level=True)
    return bpy


def write_wav(path, samples: np.ndarray, rate: int) -> Path:
    """16-bit PCM WAV with the standard library (mono (n,) or (n, channels))."""
    import wave
    data = np.asarray(samples, np.float64)
    channels = 1 if data.ndim == 1 else data.shape[1]
    pcm = np.clip(np.round(data * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return Path(path)


def speechlike(seconds: float, rate: int = 22050, seed: int = 0, channels: int = 1) -> np.ndarray:
    """A voiced, syllable-modulated signal with noise bursts: loud, varied, deterministic."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 0.5
    noise = rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 1.3 * t) > 0.7)
    x = 0.25 * voiced * envelope + 0.05 * noise
    x = 0.8 * x / np.abs(x).max()
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def make_wav(path, seconds: float = 1.5, rate: int = 22050, seed: int = 0, silent: bool = False) -> Path:
    x = np.zeros(int(round(seconds * rate))) if silent else speechlike(seconds, rate, seed)
    return write_wav(path, x, rate)


def reset_scene():
    import bpy
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def import_addon():
    """The add-on from this checkout, registered (repo root on sys.path, core imported top-level)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import bpy
    import blender_addon
    if not hasattr(bpy.types.Scene, "speech_to_face"):
        blender_addon.register()
    return blender_addon


def load_head(name: str = "Head"):
    from blender_addon import api
    return api.load_head(str(HEAD), name=name)


def evaluated_vertices(obj, frame: int) -> np.ndarray:
    import bpy
    scene = bpy.context.scene
    scene.frame_set(frame)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    mesh = obj.evaluated_get(depsgraph).data
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def snapshot(obj, scene=None) -> dict:
    """Everything a failed bake must not change: geometry, keys, animation, scene timeline."""
    import bpy
    scene = scene or bpy.context.scene
    state = {"scene": (scene.frame_start, scene.frame_end, scene.frame_current,
                       scene.render.fps, scene.render.fps_base)}
    from blender_addon import compat
    state["strips"] = sorted((s.name, s.channel, s.frame_final_start, s.frame_final_end)
                             for s in compat.all_strips(scene))
    state["actions"] = sorted(a.name for a in bpy.data.actions)
    if obj is None or obj.type != "MESH":
        state["object"] = None if obj is None else (obj.name, obj.type)
        return state
    mesh = obj.data
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    state["co"] = co.tobytes()
    state["polys"] = len(mesh.polygons)
    key = mesh.shape_keys
    if key is not None:
        blocks = []
        for kb in key.key_blocks:
            kco = np.empty(len(mesh.vertices) * 3, np.float32)
            kb.data.foreach_get("co", kco)
            blocks.append((kb.name, kco.tobytes(), kb.value, kb.slider_min, kb.slider_max, kb.mute))
        state["keys"] = blocks
        state["key_props"] = {k: str(key[k]) for k in key.keys()}
        ad = key.animation_data
        state["key_action"] = None if ad is None or ad.action is None else ad.action.name
        if ad is not None and ad.action is not None:
            fcs = compat.fcurves(ad.action, getattr(ad, "action_slot", None), ensure=False)
            state["fcurves"] = sorted(
                (fc.data_path, tuple(tuple(p.co) for p in fc.keyframe_points)) for fc in (fcs or []))
    return state


def run_tool(*args, env=None, timeout=600, cwd=None) -> subprocess.CompletedProcess:
    """Run a tool from tools/ with this interpreter (bpy wheel) as a user would."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([PYTHON, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=cwd or ROOT)
