"""Torch back end for inference: the training modules behind the numpy runtime's interface.

Optional: used when torch is importable and the user asks for it (CUDA when available).
On the CPU torch runs on one thread: these operations are too small for its thread pool,
which made them several times slower on two cores; S2D splits each batch between two threads
itself instead (``core.parallel``; torch releases the GIL in its operations).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .mesh_hierarchy import load_hierarchy
from .numpy_runtime import fold_s2d
from .parallel import default_threads, split_frames
from .s2d import S2D, S2DConfig
from .s2l import S2L, S2LConfig


def _one_cpu_thread(device: torch.device) -> None:
    if device.type == "cpu" and torch.get_num_threads() != 1:
        torch.set_num_threads(1)  # process-wide; the pipeline runs S2D on its own threads instead


def _load_state(module: torch.nn.Module, state: dict) -> None:
    module.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in state.items()}, strict=True)


class TorchS2L:
    def __init__(self, config: dict, state: dict, device: str = "cpu"):
        self.device = torch.device(device)
        _one_cpu_thread(self.device)
        self.model = S2L(S2LConfig(**config))
        self.config = self.model.config.to_dict()
        _load_state(self.model, state)
        self.model.eval().to(self.device)

    @torch.no_grad()
    def __call__(self, features: np.ndarray, num_frames: int, fps: float, offset: float = 0.0,
                 condition: np.ndarray | None = None, return_seal: bool = False):
        x = torch.from_numpy(np.asarray(features, np.float32))[None].to(self.device)
        code = None if condition is None else torch.from_numpy(np.asarray(condition, np.float32))[None].to(self.device)
        if return_seal:
            out, seal = self.model(x, num_frames, fps, offset, code, return_seal=True)
            return out[0].cpu().numpy(), seal[0].cpu().numpy()
        return self.model(x, num_frames, fps, offset, code)[0].cpu().numpy()


class TorchS2D:
    """S2D regrouped as in ``core.numpy_runtime.fold_s2d``; the merged up-sampling + spiral
    gather of each level is one sparse CSR matrix (N_fine x N_coarse * S, zeros dropped)."""

    def __init__(self, config: dict, state: dict, device: str = "cpu"):
        self.device = torch.device(device)
        _one_cpu_thread(self.device)
        S2D(S2DConfig(**config)).load_state_dict(  # same strict name and shape check as training
            {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in state.items()}, strict=True)
        folded = fold_s2d(config, state, load_hierarchy())
        self.coarse_size = folded.coarse_size
        self.first_weight = torch.from_numpy(folded.first_weight).to(self.device)
        self.first_bias = torch.from_numpy(folded.first_bias).to(self.device)
        self.elu = S2DConfig(**config).activation == "elu"
        self.levels = [(torch.from_numpy(level.weight).to(self.device), torch.from_numpy(level.bias).to(self.device),
                        _sparse_operator(level).to(self.device), level.spiral_length) for level in folded.levels]
        self.vertices = int(self.levels[-1][2].shape[0])
        self.threads = default_threads() if self.device.type == "cpu" else 1

    # Below this many frames a batch runs on one thread (the halves would be too small).
    min_frames_per_thread = 8

    def __call__(self, landmark_displacements: np.ndarray) -> np.ndarray:
        x = np.asarray(landmark_displacements, np.float32)
        if self.threads <= 1 or len(x) < 2 * self.min_frames_per_thread:
            return self._forward(x)
        out = np.empty((len(x), self.vertices, 3), np.float32)

        def work(a, e):
            out[a:e] = self._forward(x[a:e])
        split_frames(work, len(x), self.threads)
        return out

    @torch.no_grad()
    def _forward(self, landmark_displacements: np.ndarray) -> np.ndarray:
        lmk = torch.from_numpy(landmark_displacements).to(self.device)
        b = lmk.shape[0]
        x = (lmk.reshape(b, -1) @ self.first_weight + self.first_bias).reshape(b, self.coarse_size, -1).transpose(0, 1)
        for weight, bias, operator, s in self.levels:
            x = torch.nn.functional.elu(x) if self.elu else torch.relu(x)
            n_coarse, _, c_in = x.shape
            c_out = bias.shape[0]
            y = (x.reshape(-1, c_in) @ weight).reshape(n_coarse, b, s, c_out).transpose(1, 2).reshape(n_coarse * s, b * c_out)
            x = (operator @ y).reshape(-1, b, c_out) + bias
        return x.transpose(0, 1).contiguous().cpu().numpy()


def _sparse_operator(level) -> torch.Tensor:
    keep = level.coef != 0
    counts = keep.sum(axis=1)
    crow = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    cols = level.index[keep].astype(np.int64)      # row-major, so grouped by row as CSR needs
    size = (len(level.index), int(level.index.max()) + 1)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": matmul is all we use
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(crow), torch.from_numpy(cols),
                                       torch.from_numpy(level.coef[keep].astype(np.float32)), size)
