"""What the tools that run inside Blender (or on the bpy wheel) check first."""

from __future__ import annotations

import os
import sys


def require_bpy(script: str) -> None:
    """Exit with one clear line when ``script`` was started by a Python that has no bpy."""
    try:
        import bpy  # noqa: F401  (Blender, or the bpy wheel: pip install bpy==5.0.1)
    except ImportError:
        sys.exit(f"error: {os.path.basename(script)} needs Blender's Python: run it as "
                 f"'blender -b -P {os.path.relpath(script)} -- ARGS' or install the bpy wheel")
