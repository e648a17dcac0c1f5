"""S2L (Speech2Landmarks): speech features -> displacements of the 68 landmarks, every frame.

Paper, Sec. 3.1: a pretrained speech encoder, its frames linearly resampled to the animation
rate, a 3-layer bidirectional LSTM (hidden 64, dropout 0.2) and a linear layer that outputs
the 68x3 landmark displacements from the neutral pose. Optionally (``condition_dim``) a per-frame
control code (emotion and speaking style, core.expression) joins the resampled features at the
BiLSTM's input, as Speech4Mesh's emotion embedding joins its speech features.

The frozen part of each encoder (hama posteriors, log-mel, wav2vec 2.0 states) lives in
``core.encoders``; this module holds what is trained: feature normalisation, the optional
trainable front end (the ``mel`` encoder's small 1-D conv stack), the BiLSTM and the output
layer. ``core.numpy_runtime`` mirrors it exactly for inference in stock Blender.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from . import framerate


@dataclass
class S2LConfig:
    encoder: str = "hama"          # name of the speech encoder in core.encoders
    input_dim: int = 191           # encoder feature size (hama: 191 IPA log-posteriors)
    encoder_rate: float = 50.0     # encoder frames per second
    frontend_channels: int = 0     # >0: trainable 1-D conv stack before resampling (mel)
    frontend_layers: int = 2
    frontend_kernel: int = 5
    hidden_size: int = 64
    num_layers: int = 3
    dropout: float = 0.2
    num_landmarks: int = 68
    output_scale: float = 1.0      # metres per output unit (1: zero-initialised output learns fastest)
    condition_dim: int = 0         # per-frame control code next to the features (core.expression; 0: none)
    seal_head: bool = False        # also a per-frame bilabial-seal logit (core.lip_seal; not in the paper)

    def to_dict(self) -> dict:
        return asdict(self)


class S2L(nn.Module):
    def __init__(self, config: S2LConfig):
        super().__init__()
        self.config = c = config
        # Feature normalisation measured on the training corpus (identity until trained).
        self.register_buffer("feature_mean", torch.zeros(c.input_dim))
        self.register_buffer("feature_std", torch.ones(c.input_dim))
        layers, width = [], c.input_dim
        for _ in range(c.frontend_layers if c.frontend_channels else 0):
            layers += [nn.Conv1d(width, c.frontend_channels, c.frontend_kernel, padding=c.frontend_kernel // 2), nn.GELU(approximate="tanh")]
            width = c.frontend_channels
        self.frontend = nn.Sequential(*layers)
        self.lstm = nn.LSTM(width + c.condition_dim, c.hidden_size, num_layers=c.num_layers, batch_first=True,
                            bidirectional=True, dropout=c.dropout)
        self.output = nn.Linear(2 * c.hidden_size, c.num_landmarks * 3)
        # As in the authors' code: start from "no motion" so early training is not noise.
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)
        if c.seal_head:
            # P(the lips are sealed for a p/b/m now), read from the same BiLSTM states; starts at
            # "rarely" (sigmoid(-4) = 2 %, about the seals' share of speech frames)
            self.seal = nn.Linear(2 * c.hidden_size, 1)
            nn.init.zeros_(self.seal.weight)
            nn.init.constant_(self.seal.bias, -4.0)

    def forward(self, features: torch.Tensor, num_frames: int, fps: float, offset: float = 0.0,
                condition: torch.Tensor | None = None, return_seal: bool = False):
        """(B, T_enc, input_dim) encoder features -> (B, num_frames, 68, 3) displacements.

        Output frame k shows time ``offset + k / fps`` seconds after the features' start.
        ``condition``: (B, num_frames, condition_dim) codes at the animation rate (None: zeros,
        i.e. neutral emotion and default style). ``return_seal`` (networks with ``seal_head``):
        also the (B, num_frames) seal logits.
        """
        x = (features - self.feature_mean) / self.feature_std
        if len(self.frontend):
            x = self.frontend(x.transpose(1, 2)).transpose(1, 2)
        x = resample_frames(x, self.config.encoder_rate, fps, num_frames, offset)
        if self.config.condition_dim:
            if condition is None:
                condition = x.new_zeros(x.shape[0], num_frames, self.config.condition_dim)
            x = torch.cat([x, condition.to(x.dtype)], dim=-1)
        x, _ = self.lstm(x)
        out = self.output(x) * self.config.output_scale
        out = out.view(x.shape[0], num_frames, self.config.num_landmarks, 3)
        if return_seal:
            return out, self.seal(x)[..., 0]
        return out


def resample_frames(x: torch.Tensor, source_rate: float, fps: float, num_frames: int,
                    offset: float = 0.0) -> torch.Tensor:
    """Linear interpolation of (B, T, C) frames to ``num_frames`` at ``fps`` (differentiable)."""
    lo, hi, w = framerate.interpolation_weights(x.shape[1], source_rate, num_frames, fps, offset)
    lo, hi = torch.from_numpy(lo).to(x.device), torch.from_numpy(hi).to(x.device)
    w = torch.from_numpy(w).to(x.device, x.dtype)[None, :, None]
    return (1 - w) * x[:, lo] + w * x[:, hi]
