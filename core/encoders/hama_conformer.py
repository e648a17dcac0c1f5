"""hama's phoneme recogniser in numpy/BLAS, reading the weights hama's wheel ships.

hama (Apache-2.0) runs its CTC phoneme recogniser, ``hama/assets/asr_waveform.hama``, with a
native library that uses one thread and exists only for Linux and macOS. This module runs the
same network with numpy matrix products, so the hama encoder is faster, uses BLAS's threads,
and also works on Windows (the wheel's weights are plain data; only its library is native).
The architecture below is what the shipped tensors' names and shapes imply, confirmed by
``tests/test_encoders.py``, which keeps this output equal to hama's own:

    16 kHz waveform -> STFT (400-sample frames every 160 samples, centred with reflected edges;
    the shipped real / imaginary kernels hold the window) -> power -> 80 mel bands (shipped
    filterbank) -> log(max(., 1e-10)), held in float16 as hama's engine does
    -> Conv1d 80 -> 144, kernel 3, stride 2 (now 50 Hz) -> GELU (tanh form)
    -> 4 conformer blocks: x += FFN/2; x += self-attention (4 heads); x += convolution module
       (pointwise -> GLU -> depthwise, kernel 31, batch norm folded in -> SiLU -> pointwise);
       x += FFN/2; LayerNorm. Each sub-layer starts with its own LayerNorm; FFN is
       Linear 144 -> 576 -> SiLU -> Linear 576 -> 144.
    -> Linear 144 -> 191 -> log-softmax: per-frame IPA log-posteriors.
"""

from __future__ import annotations

import importlib.util
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EncoderUnavailable

ASSET = "asr_waveform.hama"


@dataclass
class HamaConformerConfig:
    n_fft: int = 400
    hop: int = 160
    n_mels: int = 80
    log_floor: float = 1e-10
    width: int = 144
    heads: int = 4
    ffn_width: int = 576
    kernel: int = 31
    blocks: int = 4
    vocab: int = 191
    layer_norm_eps: float = 1e-5


def asset_path() -> Path:
    """The weights file inside the installed hama package (found without importing hama)."""
    spec = importlib.util.find_spec("hama")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderUnavailable("The hama package is not installed, so its recogniser weights are missing. "
                                 "Use the 'mel' encoder instead.")
    path = Path(list(spec.submodule_search_locations)[0]) / "assets" / ASSET
    if not path.is_file():
        raise EncoderUnavailable(f"hama's recogniser weights are missing ({ASSET} not in the hama package).")
    return path


def read_package(path) -> dict:
    """Tensors of a hama ``.hama`` file, as float32 arrays.

    Layout (little endian): b"HAMAPK", 2 version bytes, u32 tensor count; per tensor a u16 name
    length, the UTF-8 name, u8 dtype (0 float32, 1 float16), u8 rank, rank x u32 dims, u64
    offset and u64 byte size; the data follow the header, starting on a 16-byte boundary.
    """
    data = Path(path).read_bytes()
    if data[:6] != b"HAMAPK":
        raise EncoderUnavailable(f"{Path(path).name} is not a hama weights file.")
    count, pos, entries = struct.unpack_from("<I", data, 8)[0], 12, []
    for _ in range(count):
        (n,) = struct.unpack_from("<H", data, pos)
        name = data[pos + 2:pos + 2 + n].decode()
        pos += 2 + n
        dtype, rank = data[pos], data[pos + 1]
        dims = struct.unpack_from(f"<{rank}I", data, pos + 2)
        offset, size = struct.unpack_from("<QQ", data, pos + 2 + 4 * rank)
        pos += 2 + 4 * rank + 16
        entries.append((name, {0: "<f4", 1: "<f2"}[dtype], dims, offset, size))
    base = (pos + 15) // 16 * 16
    return {name: np.frombuffer(data, dt, int(np.prod(dims)), base + off).reshape(dims).astype(np.float32)
            for name, dt, dims, off, size in entries}


class HamaConformer:
    def __init__(self, tensors: dict | None = None, config: HamaConformerConfig | None = None):
        self.config = c = config or HamaConformerConfig()
        t = tensors if tensors is not None else read_package(asset_path())
        try:
            self._load(t, c)
        except (KeyError, ValueError, IndexError) as exc:
            raise EncoderUnavailable(f"hama's recogniser weights are not the layout this version reads ({exc}).") from None

    def _load(self, t: dict, c: HamaConformerConfig) -> None:
        # Front end: [real | imaginary] DFT kernels in one matrix, so one product per frame block.
        self.dft = np.ascontiguousarray(np.concatenate([t["stft_real_kernel"][:, 0], t["stft_imag_kernel"][:, 0]]).T)
        self.mel = t["mel_fb"]
        self.n_bins = t["stft_real_kernel"].shape[0]
        # Tensors the ONNX export left unnamed, in graph order: the subsampling conv, one
        # depthwise conv per block, and per block six matrices (FFN1 in/out, attention in/out,
        # FFN2 in/out), stored (in, out).
        def numbered(prefix):
            return [t[k] for k in sorted((k for k in t if k.startswith(prefix)), key=lambda k: int(k.rsplit("_", 1)[1]))]
        convs, mats = numbered("onnx::Conv_"), numbered("onnx::MatMul_")
        self.sub_w = convs[0].transpose(2, 1, 0).reshape(-1, c.width)     # (3 * 80, 144)
        self.sub_b = convs[1]
        if self.sub_w.shape != (3 * c.n_mels, c.width) or len(mats) != 6 * c.blocks:
            raise ValueError("unexpected subsampling or matrix tensors")
        self.blocks = []
        for i in range(c.blocks):
            p = f"acoustic_model.model.blocks.{i}."
            m = mats[6 * i:6 * i + 6]
            dw = convs[2 + 2 * i]
            if dw.shape != (c.width, 1, c.kernel) or m[2].shape != (c.width, 3 * c.width):
                raise ValueError(f"block {i} shapes")
            self.blocks.append(dict(
                ffn1=(t[p + "ffn1.norm.weight"], t[p + "ffn1.norm.bias"], m[0], t[p + "ffn1.fc1.bias"], m[1], t[p + "ffn1.fc2.bias"]),
                attn_norm=(t[p + "attn_norm.weight"], t[p + "attn_norm.bias"]),
                attn=(m[2], t[p + "attn.in_proj_bias"], m[3], t[p + "attn.out_proj.bias"]),
                conv_norm=(t[p + "conv.norm.weight"], t[p + "conv.norm.bias"]),
                pw1=(np.ascontiguousarray(t[p + "conv.pointwise1.weight"][:, :, 0].T), t[p + "conv.pointwise1.bias"]),
                dw=(np.ascontiguousarray(dw[:, 0].T), convs[3 + 2 * i]),            # (31, 144)
                pw2=(np.ascontiguousarray(t[p + "conv.pointwise2.weight"][:, :, 0].T), t[p + "conv.pointwise2.bias"]),
                ffn2=(t[p + "ffn2.norm.weight"], t[p + "ffn2.norm.bias"], m[4], t[p + "ffn2.fc1.bias"], m[5], t[p + "ffn2.fc2.bias"]),
                norm=(t[p + "norm.weight"], t[p + "norm.bias"]),
            ))
        self.proj_w = np.ascontiguousarray(t["acoustic_model.model.proj.weight"][:, :, 0].T)
        self.proj_b = t["acoustic_model.model.proj.bias"]

    @staticmethod
    def num_frames(num_samples: int, hop: int = 160) -> int:
        return (num_samples // hop) // 2 + 1

    def log_mel(self, wav: np.ndarray) -> np.ndarray:
        c = self.config
        half = c.n_fft // 2
        x = np.pad(np.asarray(wav, np.float32), (half, half), mode="reflect")
        n = 1 + (len(x) - c.n_fft) // c.hop
        # A contiguous copy of the overlapping frames: BLAS is ~20x faster on it than on a strided view.
        frames = np.ascontiguousarray(np.lib.stride_tricks.as_strided(x, (n, c.n_fft), (x.strides[0] * c.hop, x.strides[0])))
        spec = frames @ self.dft
        power = spec[:, :self.n_bins] ** 2 + spec[:, self.n_bins:] ** 2
        log_mel = np.log(np.maximum(power @ self.mel, np.float32(c.log_floor)))
        return log_mel.astype(np.float16).astype(np.float32)

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        """(N,) float32 16 kHz samples -> (frames, 191) log-posteriors at 50 Hz."""
        c = self.config
        feats = self.log_mel(wav)
        # Conv1d(k=3, stride 2, padding 1) as one product over stacked neighbours.
        padded = np.pad(feats, ((1, 1), (0, 0)))
        n = (len(feats) - 1) // 2 + 1
        cols = np.concatenate([padded[j:j + 2 * n - 1:2] for j in range(3)], axis=1)
        x = _gelu_tanh(cols @ self.sub_w + self.sub_b)
        for block in self.blocks:
            x = self._block(x, block)
        logits = x @ self.proj_w + self.proj_b
        logits -= logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))

    def _block(self, x: np.ndarray, b: dict) -> np.ndarray:
        c = self.config
        x = x + 0.5 * self._ffn(x, *b["ffn1"])
        x = x + self._attention(self._norm(x, *b["attn_norm"]), *b["attn"])
        h = self._norm(x, *b["conv_norm"]) @ b["pw1"][0] + b["pw1"][1]
        h = h[:, :c.width] * _sigmoid(h[:, c.width:])                       # GLU
        w, bias = b["dw"]
        pad = c.kernel // 2
        hp = np.pad(h, ((pad, pad), (0, 0)))
        d = hp[:len(h)] * w[0]
        for j in range(1, c.kernel):
            d += hp[j:j + len(h)] * w[j]
        d += bias
        x = x + (_silu(d) @ b["pw2"][0] + b["pw2"][1])
        x = x + 0.5 * self._ffn(x, *b["ffn2"])
        return self._norm(x, *b["norm"])

    def _ffn(self, x, norm_w, norm_b, w1, b1, w2, b2):
        return _silu(self._norm(x, norm_w, norm_b) @ w1 + b1) @ w2 + b2

    def _attention(self, x, w_in, b_in, w_out, b_out):
        c = self.config
        t, hd = len(x), c.width // c.heads
        qkv = (x @ w_in + b_in).reshape(t, 3, c.heads, hd).transpose(1, 2, 0, 3)   # (3, H, T, hd)
        q, k, v = qkv[0] * np.float32(1.0 / np.sqrt(hd)), qkv[1], qkv[2]
        heads = np.empty((t, c.heads, hd), np.float32)
        for i in range(c.heads):  # one (T, T) score matrix at a time: 7 MB for a 26 s chunk
            s = q[i] @ k[i].T
            s -= s.max(axis=-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(axis=-1, keepdims=True)
            heads[:, i] = s @ v[i]
        return heads.reshape(t, c.width) @ w_out + b_out

    def _norm(self, x, w, b):
        m = x.mean(axis=-1, keepdims=True)
        d = x - m
        v = (d * d).mean(axis=-1, keepdims=True)
        return d / np.sqrt(v + np.float32(self.config.layer_norm_eps)) * w + b


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _silu(x):
    return x * _sigmoid(x)


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.float32(0.7978845608028654) * (x + np.float32(0.044715) * x ** 3)))
