"""Torch back end for inference: the training modules behind the numpy runtime's interface.

Optional: used when torch is importable and the user asks for it (CUDA when available).
"""

from __future__ import annotations

import numpy as np
import torch

from .s2d import S2D, S2DConfig
from .s2l import S2L, S2LConfig


def _load_state(module: torch.nn.Module, state: dict) -> None:
    module.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in state.items()}, strict=True)


class TorchS2L:
    def __init__(self, config: dict, state: dict, device: str = "cpu"):
        self.device = torch.device(device)
        self.model = S2L(S2LConfig(**config))
        self.config = self.model.config.to_dict()
        _load_state(self.model, state)
        self.model.eval().to(self.device)

    @torch.no_grad()
    def __call__(self, features: np.ndarray, num_frames: int, fps: float, offset: float = 0.0,
                 condition: np.ndarray | None = None) -> np.ndarray:
        x = torch.from_numpy(np.asarray(features, np.float32))[None].to(self.device)
        code = None if condition is None else torch.from_numpy(np.asarray(condition, np.float32))[None].to(self.device)
        return self.model(x, num_frames, fps, offset, code)[0].cpu().numpy()


class TorchS2D:
    def __init__(self, config: dict, state: dict, device: str = "cpu"):
        self.device = torch.device(device)
        self.model = S2D(S2DConfig(**config))
        _load_state(self.model, state)
        self.model.eval().to(self.device)

    @torch.no_grad()
    def __call__(self, landmark_displacements: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.asarray(landmark_displacements, np.float32)).to(self.device)
        return self.model(x).cpu().numpy()
