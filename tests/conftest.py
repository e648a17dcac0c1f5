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
