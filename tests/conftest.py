import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REQUIRE_BPY_ENV = "SPEECH_TO_FACE_REQUIRE_BPY"


def pytest_addoption(parser):
    parser.addoption("--require-bpy", action="store_true",
                     help="fail (instead of skip) the add-on tests when the bpy module cannot be imported; "
                          "on by default when the CI environment variable is true")


def pytest_configure(config):
    # Read by tests/addon_helpers.import_bpy while the add-on test modules are collected.
    if config.getoption("--require-bpy") or os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        os.environ[REQUIRE_BPY_ENV] = "1"
    config.addinivalue_line("markers", "needs_audio: needs Blender's audio (aud, sound strips)")


SAMPLE_AUDIO = ROOT / "core" / "assets" / "audio" / "sample_speech.wav"
HEADS = ROOT / "core" / "assets" / "heads"


@pytest.fixture(scope="session")
def topology():
    from core import flame
    return flame.load_topology()


@pytest.fixture(scope="session")
def speech16k():
    from core import audio
    return audio.load_audio(SAMPLE_AUDIO)


def rotation(axis, degrees):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    a = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


# --- Blender builds without audio ------------------------------------------------------------
# The bpy 4.2 wheels are built without audaspace: no `aud`, no sound strips (Blender 4.2 itself
# has both). Tests marked needs_audio skip there with that reason; every other add-on test runs.

def _no_audio_reason() -> str:
    try:
        import bpy
    except ImportError:
        return ""  # the add-on test modules report the missing bpy themselves
    try:
        import aud  # noqa: F401  (importable only after bpy)
    except ImportError:
        return (f"the bpy {bpy.app.version_string} wheel is built without audio (no aud module, no sound "
                f"strips); Blender {bpy.app.version[0]}.{bpy.app.version[1]} itself has audio")
    return ""


def pytest_collection_modifyitems(config, items):
    marked = [item for item in items if item.get_closest_marker("needs_audio")]
    reason = _no_audio_reason() if marked else ""
    for item in marked if reason else ():
        item.add_marker(pytest.mark.skip(reason=reason))


# --- Leaving a bpy process -----------------------------------------------------------------------
# Some bpy wheels do not exit cleanly once the add-on and Blender's threads are loaded: 4.5.x can
# deadlock in interpreter shutdown and 4.3.0 segfaults there. The results are reported by then,
# so end the process with pytest's exit status instead of running the interpreter's shutdown.
_EXIT_STATUS = {}


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    _EXIT_STATUS["status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if "bpy" in sys.modules and "status" in _EXIT_STATUS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS["status"])
