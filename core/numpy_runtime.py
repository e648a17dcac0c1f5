"""Inference of S2L and S2D in pure numpy, so the add-on runs in stock Blender.

Reads the same parameter names as the torch ``state_dict`` of ``core.s2l.S2L`` and
``core.s2d.S2D``; S2L mirrors it operation for operation, S2D is an exact regrouping of the
same arithmetic (``fold_s2d``). Parity tests keep them equal. Configs are
plain dicts with the fields of S2LConfig / S2DConfig (torch is not importable here).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import framerate
from .mesh_hierarchy import MeshHierarchy, load_hierarchy

S2L_DEFAULTS = dict(encoder="hama", input_dim=191, encoder_rate=50.0, frontend_channels=0,
                    frontend_layers=2, frontend_kernel=5, hidden_size=64, num_layers=3,
                    dropout=0.2, num_landmarks=68, output_scale=1.0, condition_dim=0)
S2D_DEFAULTS = dict(num_landmarks=68, filters=[128, 64, 32, 32, 16, 3], activation="elu", scale=1e-3)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))


def _elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


# ---------------------------------------------------------------------------------------- S2L

def s2l_parameter_shapes(config: dict) -> dict:
    c = {**S2L_DEFAULTS, **config}
    shapes = {"feature_mean": (c["input_dim"],), "feature_std": (c["input_dim"],)}
    width = c["input_dim"]
    for i in range(c["frontend_layers"] if c["frontend_channels"] else 0):
        shapes[f"frontend.{2 * i}.weight"] = (c["frontend_channels"], width, c["frontend_kernel"])
        shapes[f"frontend.{2 * i}.bias"] = (c["frontend_channels"],)
        width = c["frontend_channels"]
    h = c["hidden_size"]
    width += c["condition_dim"]
    for layer in range(c["num_layers"]):
        n_in = width if layer == 0 else 2 * h
        for sfx in ("", "_reverse"):
            shapes[f"lstm.weight_ih_l{layer}{sfx}"] = (4 * h, n_in)
            shapes[f"lstm.weight_hh_l{layer}{sfx}"] = (4 * h, h)
            shapes[f"lstm.bias_ih_l{layer}{sfx}"] = (4 * h,)
            shapes[f"lstm.bias_hh_l{layer}{sfx}"] = (4 * h,)
    shapes["output.weight"] = (c["num_landmarks"] * 3, 2 * h)
    shapes["output.bias"] = (c["num_landmarks"] * 3,)
    return shapes


class NumpyS2L:
    def __init__(self, config: dict, state: dict):
        self.config = c = {**S2L_DEFAULTS, **config}
        _check_state("S2L", s2l_parameter_shapes(c), state)
        self.p = {k: np.asarray(v, np.float32) for k, v in state.items()}

    def __call__(self, features: np.ndarray, num_frames: int, fps: float, offset: float = 0.0,
                 condition: np.ndarray | None = None) -> np.ndarray:
        """(T_enc, input_dim) features -> (num_frames, 68, 3) landmark displacements.

        ``condition``: (num_frames, condition_dim) codes (None: zeros, neutral)."""
        c, p = self.config, self.p
        x = (np.asarray(features, np.float32) - p["feature_mean"]) / p["feature_std"]
        for i in range(c["frontend_layers"] if c["frontend_channels"] else 0):
            x = _gelu_tanh(_conv1d_same(x, p[f"frontend.{2 * i}.weight"], p[f"frontend.{2 * i}.bias"]))
        x = framerate.resample_frames(x, c["encoder_rate"], fps, num_frames, offset)
        if c["condition_dim"]:
            code = np.zeros((num_frames, c["condition_dim"]), np.float32) if condition is None else condition
            x = np.concatenate([x, np.asarray(code, x.dtype)], axis=1)
        for layer in range(c["num_layers"]):
            fwd = self._lstm_direction(x, layer, "", reverse=False)
            bwd = self._lstm_direction(x, layer, "_reverse", reverse=True)
            x = np.concatenate([fwd, bwd], axis=1)
        out = (x @ p["output.weight"].T + p["output.bias"]) * c["output_scale"]
        return out.reshape(num_frames, c["num_landmarks"], 3)

    def _lstm_direction(self, x: np.ndarray, layer: int, sfx: str, reverse: bool) -> np.ndarray:
        p, h = self.p, self.config["hidden_size"]
        # Input projections for all steps at once; only the recurrence is sequential.
        gates_x = x @ p[f"lstm.weight_ih_l{layer}{sfx}"].T + p[f"lstm.bias_ih_l{layer}{sfx}"] + p[f"lstm.bias_hh_l{layer}{sfx}"]
        w_hh = p[f"lstm.weight_hh_l{layer}{sfx}"].T
        hidden = np.zeros(h, np.float32)
        cell = np.zeros(h, np.float32)
        out = np.empty((len(x), h), np.float32)
        steps = range(len(x) - 1, -1, -1) if reverse else range(len(x))
        for t in steps:
            g = gates_x[t] + hidden @ w_hh           # torch gate order: input, forget, cell, output
            i, f, o = _sigmoid(g[:h]), _sigmoid(g[h:2 * h]), _sigmoid(g[3 * h:])
            cell = f * cell + i * np.tanh(g[2 * h:3 * h])
            hidden = o * np.tanh(cell)
            out[t] = hidden
        return out


def _conv1d_same(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """torch Conv1d with padding k//2 on (T, C_in) -> (T, C_out)."""
    out_c, in_c, k = weight.shape
    pad = k // 2
    xp = np.pad(x, ((pad, pad), (0, 0)))
    cols = np.stack([xp[j:j + len(x)] for j in range(k)], axis=1)   # (T, k, C_in)
    w = weight.transpose(0, 2, 1).reshape(out_c, k * in_c)
    return cols.reshape(len(x), k * in_c) @ w.T + bias


# ---------------------------------------------------------------------------------------- S2D

def s2d_parameter_shapes(config: dict, hierarchy: MeshHierarchy | None = None) -> dict:
    c = {**S2D_DEFAULTS, **config}
    h = hierarchy or load_hierarchy()
    levels = len(h.level_sizes)
    f = c["filters"]
    shapes = {"fc.weight": (int(h.level_sizes[-1]) * f[0], c["num_landmarks"] * 3),
              "fc.bias": (int(h.level_sizes[-1]) * f[0],)}
    for i, level in enumerate(range(levels - 1, -1, -1)):
        shapes[f"convs.{i}.linear.weight"] = (f[i + 1], f[i] * h.spirals[level].shape[1])
        shapes[f"convs.{i}.linear.bias"] = (f[i + 1],)
    return shapes


class NumpyS2D:
    """S2D as an exact reformulation of ``core.s2d.S2D`` with about a third of the arithmetic.

    Everything between two activations is linear, so it is regrouped, not approximated:
      * the first linear layer is folded into the first spiral convolution (one 204 x 1280
        matrix, computed once in float64);
      * a spiral convolution after up-sampling, conv(U x), is applied at the coarse level,
        Y_s = x W_s (one matmul for all spiral positions), and its up-sampling and spiral
        gather become one sparse operator, out[v] = sum_s sum_k U[spiral[v, s], k] Y_s[k]:
        27 (index, weight) pairs per fine vertex, precomputed as plain arrays (no scipy).
    Results equal the layer-by-layer network up to float32 rounding (tests/test_networks.py).
    """

    def __init__(self, config: dict, state: dict, hierarchy: MeshHierarchy | None = None):
        self.config = c = {**S2D_DEFAULTS, **config}
        self.h = hierarchy or load_hierarchy()
        _check_state("S2D", s2d_parameter_shapes(c, self.h), state)
        self.folded = fold_s2d(c, state, self.h)
        self.elu = c["activation"] == "elu"
        self.threads = default_threads()
        self._local = threading.local()

    # Frames per pass: one pass's working set (about 1 MB at the widest level) stays in cache.
    frames_per_pass = 16
    # Gathered rows per step of the merged operator (their bytes stay in the first cache levels).
    gather_bytes = 256 * 1024

    def __call__(self, landmark_displacements: np.ndarray) -> np.ndarray:
        """(B, 68, 3) -> (B, 5023, 3) vertex displacements.

        A batch is split between ``threads`` threads (numpy's products and gathers release the
        GIL), each running passes of ``frames_per_pass`` frames in its own reused buffers."""
        x = np.asarray(landmark_displacements, np.float32)
        b = len(x)
        out = np.empty((b, self.h.level_sizes[0], 3), np.float32)
        threads = min(self.threads, -(-b // self.frames_per_pass))
        if threads <= 1:
            self._passes(x, out)
            return out
        bounds = np.linspace(0, b, threads + 1).round().astype(int)
        pool = _thread_pool(threads - 1)
        futures = [pool.submit(self._passes, x[a:e], out[a:e]) for a, e in zip(bounds[1:-1], bounds[2:])]
        try:
            self._passes(x[:bounds[1]], out[:bounds[1]])
        finally:
            for f in futures:   # always wait: the workers write into ``out``
                f.exception()
        for f in futures:
            f.result()
        return out

    def _passes(self, x: np.ndarray, out: np.ndarray) -> None:
        step = self.frames_per_pass
        for i in range(0, len(x), step):
            self._forward(x[i:i + step], out[i:i + step])

    def _buffer(self, name: str, shape: tuple) -> np.ndarray:
        """A float32 array of ``shape``, reused by this thread from pass to pass (fresh large
        arrays cost page faults that took as long as the arithmetic)."""
        buffers = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = {}
        size = int(np.prod(shape))
        flat = buffers.get(name)
        if flat is None or flat.size < size:
            flat = buffers[name] = np.empty(size, np.float32)
        return flat[:size].reshape(shape)

    def _forward(self, landmark_displacements: np.ndarray, out: np.ndarray) -> None:
        """One pass: (b, 68, 3) -> ``out`` (b, 5023, 3); the same operations, in the same order,
        as the one-array-per-step version, so the results are equal bit for bit."""
        fs = self.folded
        b = landmark_displacements.shape[0]
        first = self._buffer("first", (b, fs.first_weight.shape[1]))
        np.matmul(landmark_displacements.reshape(b, -1), fs.first_weight, out=first)
        first += fs.first_bias
        # Vertex-major layout (N, B, C): gathering whole rows is what numpy does fastest.
        x = self._buffer("x_coarse", (fs.coarse_size, b, first.shape[1] // fs.coarse_size))
        np.copyto(x, first.reshape(b, fs.coarse_size, -1).transpose(1, 0, 2))
        for i, level in enumerate(fs.levels):
            if self.elu:
                _elu_inplace(x, self._buffer("elu", x.shape))
            else:
                np.maximum(x, 0, out=x)
            n_coarse, _, c_in = x.shape
            s, c_out = level.spiral_length, level.bias.shape[0]
            width = b * c_out
            z = self._buffer("z", (n_coarse * b, s * c_out))
            np.matmul(x.reshape(-1, c_in), level.weight, out=z)
            y = self._buffer("y", (n_coarse, s, b, c_out))
            np.copyto(y, z.reshape(n_coarse, b, s, c_out).transpose(0, 2, 1, 3))
            y = y.reshape(n_coarse * s, width)
            # The merged up-sampling + spiral gather: a weighted sum of 27 rows of y per vertex,
            # a few hundred vertices at a time so the gathered rows stay in cache.
            n_fine, taps = level.coef.shape
            x = self._buffer(f"x{i}", (n_fine, b, c_out))
            rows = x.reshape(n_fine, width)
            step = max(1, self.gather_bytes // (taps * width * 4))
            gathered = self._buffer("gathered", (min(step, n_fine) * taps, width))
            index = level.flat_index
            for a in range(0, n_fine, step):
                e = min(n_fine, a + step)
                g = gathered[:(e - a) * taps]
                np.take(y, index[a * taps:e * taps], axis=0, out=g)
                np.einsum("nj,njk->nk", level.coef[a:e], g.reshape(e - a, taps, width), out=rows[a:e])
            x += level.bias
        np.copyto(out, x.transpose(1, 0, 2))


def _elu_inplace(x: np.ndarray, scratch: np.ndarray) -> None:
    """x <- ELU(x), equal bit for bit to ``_elu``: max(x, 0) + expm1(min(x, 0)) adds an exact
    zero to one of the two."""
    neg = np.minimum(x, 0, out=scratch)
    np.expm1(neg, out=neg)
    np.maximum(x, 0, out=x)
    x += neg


_POOL = None
_POOL_LOCK = threading.Lock()


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    """One shared pool of helper threads for S2D batches (created on first use)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < workers:
            _POOL = ThreadPoolExecutor(max(1, workers), thread_name_prefix="s2f-s2d")
        return _POOL


def default_threads() -> int:
    """Threads for S2D: both cores of a two-core machine, at most 2 (the passes are too short
    to share among more without waiting on memory)."""
    return max(1, min(2, os.cpu_count() or 1))


@dataclass
class FoldedLevel:
    weight: np.ndarray      # (C_in, S * C_out): column s * C_out + o is W[o, s, :]
    bias: np.ndarray        # (C_out,)
    index: np.ndarray       # (N_fine, 3 S) int: rows of Y reshaped (N_coarse * S, ...)
    coef: np.ndarray        # (N_fine, 3 S) float32 barycentric weight of each row
    spiral_length: int

    @property
    def flat_index(self) -> np.ndarray:
        return self.index.reshape(-1)  # np.take on a flat index is ~2x faster than y[index]


@dataclass
class FoldedS2D:
    coarse_size: int
    first_weight: np.ndarray    # (68 * 3, N_coarse * C_1): input in metres
    first_bias: np.ndarray      # (N_coarse * C_1,)
    levels: list                # FoldedLevel per up-sampled spiral convolution


def fold_s2d(config: dict, state: dict, hierarchy: MeshHierarchy) -> FoldedS2D:
    """The S2D parameters regrouped for inference (see NumpyS2D); float64 sums, float32 out."""
    c = {**S2D_DEFAULTS, **config}
    h, f, scale = hierarchy, c["filters"], float(c["scale"])
    p = {k: np.asarray(v, np.float64) for k, v in state.items()}
    order = list(range(len(h.level_sizes) - 1, -1, -1))          # coarsest -> full resolution
    n0, spiral0 = int(h.level_sizes[order[0]]), h.spirals[order[0]]
    # fc then conv 0: out[v] = sum_s W0_s (fc_W[spiral[v, s]] x / scale + fc_b[spiral[v, s]]) + b0.
    w0 = p["convs.0.linear.weight"].reshape(f[1], spiral0.shape[1], f[0])             # (O, S, C)
    fc_w = p["fc.weight"].reshape(n0, f[0], -1)[spiral0]                              # (N, S, C, I)
    fc_b = p["fc.bias"].reshape(n0, f[0])[spiral0]                                    # (N, S, C)
    first_w = np.einsum("osc,nsci->ino", w0, fc_w).reshape(fc_w.shape[-1], n0 * f[1]) / scale
    first_b = (np.einsum("osc,nsc->no", w0, fc_b) + p["convs.0.linear.bias"]).reshape(-1)
    levels = []
    for i in range(1, len(order)):
        fine, spiral = order[i], h.spirals[order[i]]
        s = spiral.shape[1]
        w = p[f"convs.{i}.linear.weight"].reshape(f[i + 1], s, f[i])                  # (O, S, C)
        b = p[f"convs.{i}.linear.bias"]
        if i == len(order) - 1:  # the network's output scale, folded into the last layer
            w, b = w * scale, b * scale
        up_index, up_weight = h.up_index[fine], h.up_weight[fine]                      # fine -> coarse
        index = (up_index[spiral].astype(np.int64) * s + np.arange(s)[None, :, None]).reshape(len(spiral), -1)
        coef = up_weight[spiral].reshape(len(spiral), -1)
        levels.append(FoldedLevel(
            weight=np.ascontiguousarray(w.transpose(2, 1, 0).reshape(f[i], s * f[i + 1]), np.float32),
            bias=b.astype(np.float32), index=np.ascontiguousarray(index.astype(np.intp)),
            coef=np.ascontiguousarray(coef, np.float32), spiral_length=s))
    return FoldedS2D(n0, first_w.astype(np.float32), first_b.astype(np.float32), levels)


# ------------------------------------------------------------------------------------- shared

def _check_state(what: str, shapes: dict, state: dict) -> None:
    from .errors import WeightsError
    missing = sorted(set(shapes) - set(state))
    if missing:
        raise WeightsError(f"{what} weights lack {len(missing)} parameters (e.g. {missing[0]}).")
    for name, shape in shapes.items():
        if tuple(np.shape(state[name])) != tuple(shape):
            raise WeightsError(f"{what} parameter {name} has shape {np.shape(state[name])}, expected {shape}.")


def random_state(shapes: dict, seed: int = 0) -> dict:
    """Random-initialised parameters like torch's defaults (uniform +-1/sqrt(fan_in)).

    Used only for tests and for running the pipeline before trained weights exist; such
    networks are always reported as random, never as trained.
    """
    rng = np.random.default_rng(seed)
    state = {}
    for name, shape in shapes.items():
        if name == "feature_mean":
            state[name] = np.zeros(shape, np.float32)
        elif name == "feature_std":
            state[name] = np.ones(shape, np.float32)
        else:
            fan_in = shape[1] * (shape[2] if len(shape) > 2 else 1) if len(shape) > 1 else shape[0]
            if "lstm" in name:
                fan_in = shape[0] // 4  # torch's LSTM init uses 1/sqrt(hidden_size)
            bound = 1.0 / np.sqrt(fan_in)
            state[name] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    return state
