"""Inference of S2L and S2D in pure numpy, so the add-on runs in stock Blender.

Reads the same parameter names as the torch ``state_dict`` of ``core.s2l.S2L`` and
``core.s2d.S2D``; S2L mirrors it operation for operation, S2D is an exact regrouping of the
same arithmetic (``fold_s2d``). Parity tests keep them equal. Configs are
plain dicts with the fields of S2LConfig / S2DConfig (torch is not importable here).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from . import framerate
from .mesh_hierarchy import MeshHierarchy, load_hierarchy
from .parallel import default_threads, split_frames

S2L_DEFAULTS = dict(encoder="hama", input_dim=191, encoder_rate=50.0, frontend_channels=0,
                    frontend_layers=2, frontend_kernel=5, hidden_size=64, num_layers=3,
                    dropout=0.2, num_landmarks=68, output_scale=1.0, condition_dim=0,
                    seal_head=False)
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
    if c["seal_head"]:
        shapes["seal.weight"] = (1, 2 * h)
        shapes["seal.bias"] = (1,)
    return shapes


class NumpyS2L:
    def __init__(self, config: dict, state: dict):
        self.config = c = {**S2L_DEFAULTS, **config}
        _check_state("S2L", s2l_parameter_shapes(c), state)
        self.p = {k: np.asarray(v, np.float32) for k, v in state.items()}

    def __call__(self, features: np.ndarray, num_frames: int, fps: float, offset: float = 0.0,
                 condition: np.ndarray | None = None, return_seal: bool = False):
        """(T_enc, input_dim) features -> (num_frames, 68, 3) landmark displacements.

        ``condition``: (num_frames, condition_dim) codes (None: zeros, neutral). ``return_seal``
        (networks with ``seal_head``): also the (num_frames,) seal logits."""
        c, p = self.config, self.p
        x = (np.asarray(features, np.float32) - p["feature_mean"]) / p["feature_std"]
        for i in range(c["frontend_layers"] if c["frontend_channels"] else 0):
            x = _gelu_tanh(_conv1d_same(x, p[f"frontend.{2 * i}.weight"], p[f"frontend.{2 * i}.bias"]))
        x = framerate.resample_frames(x, c["encoder_rate"], fps, num_frames, offset)
        if c["condition_dim"]:
            code = np.zeros((num_frames, c["condition_dim"]), np.float32) if condition is None else condition
            x = np.concatenate([x, np.asarray(code, x.dtype)], axis=1)
        for layer in range(c["num_layers"]):
            x = self._lstm_layer(x, layer)
        out = (x @ p["output.weight"].T + p["output.bias"]) * c["output_scale"]
        out = out.reshape(num_frames, c["num_landmarks"], 3)
        if return_seal:
            return out, (x @ p["seal.weight"][0] + p["seal.bias"][0]).astype(np.float32)
        return out

    def _lstm_layer(self, x: np.ndarray, layer: int) -> np.ndarray:
        """Both directions of one bidirectional layer -> (T, 2h): [forward, backward].

        The two directions step together (forward at t, backward at T-1-t), so each
        element-wise operation serves both; each direction's numbers are computed exactly as
        alone (the same products and the same element-wise formulas)."""
        p, h = self.p, self.config["hidden_size"]
        n = len(x)
        sfx = ("", "_reverse")
        # Input projections for all steps at once; only the recurrence is sequential.
        gates_x = [x @ p[f"lstm.weight_ih_l{layer}{d}"].T + p[f"lstm.bias_ih_l{layer}{d}"] + p[f"lstm.bias_hh_l{layer}{d}"]
                   for d in sfx]
        w_hh = [p[f"lstm.weight_hh_l{layer}{d}"].T for d in sfx]
        hidden = np.zeros((2, h), np.float32)
        cell = np.zeros((2, h), np.float32)
        g = np.empty((2, 4 * h), np.float32)
        gate = np.empty((2, 4 * h), np.float32)
        new = np.empty((2, h), np.float32)
        out = np.empty((n, 2 * h), np.float32)
        fwd, bwd = out[:, :h], out[:, h:]
        for t in range(n):                       # torch gate order: input, forget, cell, output
            np.matmul(hidden[0], w_hh[0], out=g[0])
            np.matmul(hidden[1], w_hh[1], out=g[1])
            g[0] += gates_x[0][t]
            g[1] += gates_x[1][n - 1 - t]
            np.multiply(g, 0.5, out=gate)        # _sigmoid, in place: 0.5 * (1 + tanh(0.5 g))
            np.tanh(gate, out=gate)
            gate += 1.0
            gate *= 0.5
            cell *= gate[:, h:2 * h]
            np.tanh(g[:, 2 * h:3 * h], out=new)
            new *= gate[:, :h]
            cell += new
            np.tanh(cell, out=hidden)
            hidden *= gate[:, 3 * h:]
            fwd[t] = hidden[0]
            bwd[n - 1 - t] = hidden[1]
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


# OpenBLAS runs a product on its own threads above M * N * K = 2^18 (its default threshold).
# For S2D's small products that costs more than it gains (measured 1.4x slower on two busy
# cores), and S2D keeps the cores busy with its own threads: every product stays under it.
SMALL_PRODUCT = 1 << 18


class NumpyS2D:
    """S2D as an exact reformulation of ``core.s2d.S2D`` with about a third of the arithmetic.

    Everything between two activations is linear, so it is regrouped, not approximated:
      * the first linear layer is folded into the first spiral convolution (one 204 x 1280
        matrix, computed once in float64);
      * a spiral convolution after up-sampling, conv(U x), is applied at the coarse level,
        Y_s = x W_s (one matmul per spiral position), and its up-sampling and spiral
        gather become one sparse operator, out[v] = sum_s sum_k U[spiral[v, s], k] Y_s[k]:
        27 (index, weight) pairs per fine vertex (``fold_s2d``);
      * that operator is applied in dense blocks of neighbouring fine vertices, which share
        most of their rows of Y: each block gathers its rows once and mixes them with one
        small matrix product, the bias included (``BlockOperator``; no scipy).
    Results equal the layer-by-layer network up to float32 rounding (tests/test_networks.py):
    the same products and sums, added in another order.
    """

    def __init__(self, config: dict, state: dict, hierarchy: MeshHierarchy | None = None):
        self.config = c = {**S2D_DEFAULTS, **config}
        self.h = hierarchy or load_hierarchy()
        _check_state("S2D", s2d_parameter_shapes(c, self.h), state)
        self.folded = fold_s2d(c, state, self.h)
        self.elu = c["activation"] == "elu"
        self.blocks = block_operators(self.folded, self.h)
        n0 = self.folded.coarse_size
        w0 = self.folded.first_weight.reshape(-1, n0, self.folded.first_weight.shape[1] // n0)
        b0 = self.folded.first_bias.reshape(n0, -1)
        self.first = [(np.ascontiguousarray(w0[:, k]), b0[k]) for k in range(n0)]
        self.threads = default_threads()
        self._local = threading.local()

    # Frames per pass: one pass's working set (about 1 MB at the widest level) stays in cache.
    frames_per_pass = 16
    # Gathered rows per step of the merged operator (their bytes stay in the first cache levels).
    gather_bytes = 512 * 1024

    def __call__(self, landmark_displacements: np.ndarray) -> np.ndarray:
        """(B, 68, 3) -> (B, 5023, 3) vertex displacements.

        A batch is split between ``threads`` threads (numpy's products and gathers release the
        GIL), each running passes of ``frames_per_pass`` frames in its own reused buffers."""
        x = np.asarray(landmark_displacements, np.float32)
        out = np.empty((len(x), self.h.level_sizes[0], 3), np.float32)
        threads = min(self.threads, -(-len(x) // self.frames_per_pass))
        split_frames(lambda a, e: self._passes(x[a:e], out[a:e]), len(x), threads)
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
        """One pass: (b, 68, 3) -> ``out`` (b, 5023, 3)."""
        fs = self.folded
        b = landmark_displacements.shape[0]
        lmk = landmark_displacements.reshape(b, -1)
        # Vertex-major layout (N, B, C): gathering whole rows is what numpy does fastest.
        x = self._buffer("x_coarse", (fs.coarse_size, b, fs.first_weight.shape[1] // fs.coarse_size))
        for k, (weight, bias) in enumerate(self.first):
            np.matmul(lmk, weight, out=x[k])
            x[k] += bias
        for i, op in enumerate(self.blocks):
            if self.elu:
                _elu_inplace(x, self._buffer("elu", x.shape))
            else:
                np.maximum(x, 0, out=x)
            n_coarse, _, c_in = x.shape
            s, c_out = len(op.weights), op.weights[0].shape[1]
            width = b * c_out
            # Spiral position s of every coarse vertex: y[s, vertex] = x[vertex] @ W_s, one
            # product each (no transpose); one more row holds the bias, which every block adds.
            y = self._buffer("y", (s * n_coarse * b + b, c_out))
            x2 = x.reshape(-1, c_in)
            per_call = max(1, SMALL_PRODUCT // (c_in * c_out))
            for j, weight in enumerate(op.weights):
                y_j = y[j * n_coarse * b:(j + 1) * n_coarse * b]
                for r0 in range(0, len(x2), per_call):
                    np.matmul(x2[r0:r0 + per_call], weight, out=y_j[r0:r0 + per_call])
            y[s * n_coarse * b:] = op.bias
            y = y.reshape(s * n_coarse + 1, width)
            # The merged up-sampling + spiral gather, block by block: each block of fine vertices
            # gathers the rows of y it uses once and mixes them with one small matrix product.
            x = self._buffer(f"x{i}", (op.size, b, c_out))
            rows = x.reshape(op.size, width)
            for group in op.groups:
                n_blocks, _, r = group.matrix.shape
                step = max(1, self.gather_bytes // (r * width * 4))
                gathered = self._buffer("gathered", (min(step, n_blocks) * r, width))
                cols = max(1, SMALL_PRODUCT // (op.block * r))
                for a in range(0, n_blocks, step):
                    e = min(n_blocks, a + step)
                    g = gathered[:(e - a) * r]
                    np.take(y, group.rows[a * r:e * r], axis=0, out=g)
                    g = g.reshape(e - a, r, width)
                    o = rows[group.start + a * op.block:group.start + e * op.block].reshape(e - a, op.block, width)
                    for c0 in range(0, width, cols):
                        np.matmul(group.matrix[a:e], g[:, :, c0:c0 + cols], out=o[:, :, c0:c0 + cols])
        # Fine vertices sit in block order: back to the mesh's own order, frame-major.
        final = self._buffer("final", (len(op.position), b * 3))
        np.take(x.reshape(op.size, -1), op.position, axis=0, out=final)
        np.copyto(out, final.reshape(len(op.position), b, 3).transpose(1, 0, 2))


def _elu_inplace(x: np.ndarray, scratch: np.ndarray) -> None:
    """x <- ELU(x), equal bit for bit to ``_elu``: max(x, 0) + expm1(min(x, 0)) adds an exact
    zero to one of the two."""
    neg = np.minimum(x, 0, out=scratch)
    np.expm1(neg, out=neg)
    np.maximum(x, 0, out=x)
    x += neg


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
    # einsum("osc,nsci->ino") as one batched BLAS product (the plain einsum took 0.4 s per load)
    first_w = np.matmul(w0.reshape(f[1], -1)[None], fc_w.reshape(n0, -1, fc_w.shape[-1]))      # (N, O, I)
    first_w = first_w.transpose(2, 0, 1).reshape(fc_w.shape[-1], n0 * f[1]) / scale
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


@dataclass
class BlockGroup:
    start: int              # first output row of the group
    rows: np.ndarray        # (n_blocks * R,) rows of y each block gathers (padding repeats row 0)
    matrix: np.ndarray      # (n_blocks, block, R) float32: block's fine vertices x gathered rows


@dataclass
class BlockOperator:
    """One level of the regrouped S2D with its merged up-sampling + spiral gather as dense blocks.

    y holds x @ W_s for every spiral position s and coarse row (row s * n_coarse + row), then
    one row with the bias. Fine vertices are ordered along a space-filling curve and cut into
    blocks of ``block``; the rows of y a block uses (about 8 per vertex instead of 27: neighbours
    share them) are gathered once and mixed by one (block x R) matrix, the bias row included.
    Blocks are sorted by R and grouped, each group padded to its largest R. Output rows follow
    that order (``size`` rows, padding included); the next level's rows and ``position``
    (vertex -> row) account for it."""
    weights: list           # S arrays (C_in, C_out) float32: W_s
    bias: np.ndarray        # (C_out,) float32
    block: int
    size: int
    groups: list
    position: np.ndarray    # (N_fine,) output row of each fine vertex


def block_operators(folded: "FoldedS2D", hierarchy: MeshHierarchy, block: int = 16, groups: int = 4) -> list:
    """BlockOperator per level of ``folded`` (the same coefficients, regrouped)."""
    ops = []
    n_levels = len(hierarchy.level_sizes)
    coarse_position = np.arange(folded.coarse_size)
    for i, level in enumerate(folded.levels):
        fine = n_levels - 2 - i
        n_coarse = len(coarse_position) if i == 0 else ops[-1].size
        op = _block_operator(level, coarse_position, n_coarse, _curve_order(hierarchy.vertices[fine]), block, groups)
        ops.append(op)
        coarse_position = op.position
    return ops


def _curve_order(points: np.ndarray, bits: int = 10) -> np.ndarray:
    """Vertex order along a Morton (Z-order) curve, so blocks of consecutive vertices are compact."""
    p = np.asarray(points, np.float64)
    q = ((p - p.min(0)) / max(float(np.ptp(p, 0).max()), 1e-12) * (2 ** bits - 1)).astype(np.int64)
    code = np.zeros(len(p), np.int64)
    for bit in range(bits):
        for axis in range(3):
            code |= ((q[:, axis] >> bit) & 1) << (3 * bit + axis)
    return np.argsort(code, kind="stable")


def _block_operator(level: "FoldedLevel", coarse_position: np.ndarray, n_coarse: int, order: np.ndarray,
                    block: int, groups: int) -> BlockOperator:
    s = level.spiral_length
    c_in = level.weight.shape[0]
    w = level.weight.reshape(c_in, s, -1)
    n_fine = len(level.index)
    bias_row = s * n_coarse
    rows = np.concatenate([(level.index % s) * n_coarse + coarse_position[level.index // s],
                           np.full((n_fine, 1), bias_row)], axis=1)
    coef = np.concatenate([level.coef, np.ones((n_fine, 1), np.float32)], axis=1)
    rank = np.empty(n_fine, np.int64)
    rank[order] = np.arange(n_fine)
    n_blocks = -(-n_fine // block)
    vertex, tap = np.nonzero(coef)
    block_of, slot = rank[vertex] // block, rank[vertex] % block
    width = bias_row + 1
    keys, inverse = np.unique(block_of * width + rows[vertex, tap], return_inverse=True)
    key_block, key_row = keys // width, keys % width
    counts = np.bincount(key_block, minlength=n_blocks)
    column = np.arange(len(keys)) - np.concatenate([[0], np.cumsum(counts)[:-1]])[key_block]
    by_size = np.argsort(counts, kind="stable")
    new_block = np.empty(n_blocks, np.int64)
    new_block[by_size] = np.arange(n_blocks)
    out = []
    for part in np.array_split(np.arange(n_blocks), min(groups, n_blocks)):
        ids = by_size[part]
        r = int(counts[ids].max())
        local = np.full(n_blocks, -1)
        local[ids] = np.arange(len(ids))
        gather = np.zeros((len(ids), r), np.intp)
        mine = local[key_block] >= 0
        gather[local[key_block[mine]], column[mine]] = key_row[mine]
        matrix = np.zeros((len(ids), block, r), np.float32)
        entry = local[block_of] >= 0
        np.add.at(matrix, (local[block_of[entry]], slot[entry], column[inverse[entry]]), coef[vertex[entry], tap[entry]])
        out.append(BlockGroup(start=int(part[0]) * block, rows=gather.reshape(-1), matrix=matrix))
    position = new_block[rank // block] * block + rank % block
    return BlockOperator(weights=[np.ascontiguousarray(w[:, j]) for j in range(s)], bias=level.bias,
                         block=block, size=n_blocks * block, groups=out, position=position)


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
