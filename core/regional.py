"""Regional intensities: jaw, lips and upper face scaled separately.

After "composite and regional facial movements" (each face region driven by its own
mechanism), the predicted landmark motion is split into regions before S2D densifies it:

* jaw: the part of each landmark's motion that the jaw carries - the chin's displacement
  (landmark 8) weighted by how much the landmark rides on the mandible (``JAW_SHARE``: 1 on the
  lower jaw contour and the lower lip, 0 on the upper lip, between at the corners);
* lips: what is left on the lip landmarks once the jaw's share is taken out (rounding,
  spreading, the closure that brings the lower lip back up against the upper one);
* upper face: the brows and eyelids (landmarks 17-26 and 36-47), which only emotions and the
  upper-face layer move.

Scaling in landmark space keeps S2D the single place where landmark motion becomes dense
motion, so cheeks and chin skin follow whatever the regions do. All scales at 1 return the
input unchanged (bit for bit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import flame

CHIN = 8
UPPER_FACE = flame.BROWS + flame.EYES


def _jaw_share() -> np.ndarray:
    w = np.zeros(flame.NUM_LANDMARKS)
    w[list(range(5, 12))] = 1.0                 # jaw contour around the chin
    w[[4, 12]], w[[3, 13]] = 0.7, 0.3           # towards the jaw angles
    w[[55, 56, 57, 58, 59, 65, 66, 67]] = 1.0   # lower lip, outer and inner contour
    w[[48, 54, 60, 64]] = 0.5                   # mouth corners hinge between both lips
    return w


JAW_SHARE = _jaw_share()


@dataclass(frozen=True)
class Regions:
    jaw: float = 1.0
    lips: float = 1.0
    upper_face: float = 1.0

    def __post_init__(self):
        for name in ("jaw", "lips", "upper_face"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and 0.0 <= value <= 3.0):
                raise ValueError(f"The {name.replace('_', ' ')} intensity must be between 0 and 3, got {value!r}.")

    @property
    def is_identity(self) -> bool:
        return self.jaw == 1.0 and self.lips == 1.0 and self.upper_face == 1.0


def scale(landmark_displacements: np.ndarray, regions: Regions) -> np.ndarray:
    """(..., 68, 3) template-frame landmark displacements with each region scaled."""
    d = np.asarray(landmark_displacements)
    if regions.is_identity:
        return d
    jaw = JAW_SHARE[:, None] * d[..., CHIN:CHIN + 1, :]
    residual_scale = np.ones((flame.NUM_LANDMARKS, 1))
    residual_scale[list(flame.LIP_LANDMARKS)] = regions.lips     # elsewhere the residual is tiny: left as is
    # written as changes to d, so whatever a scale of 1 touches stays exactly as it was
    out = d + (regions.jaw - 1.0) * jaw + (residual_scale - 1.0) * (d - jaw)
    upper = list(UPPER_FACE)
    out[..., upper, :] = regions.upper_face * d[..., upper, :]
    return out.astype(d.dtype, copy=False)
