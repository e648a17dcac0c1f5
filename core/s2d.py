"""S2D (Sparse2Dense): 68 landmark displacements -> displacements of all 5023 vertices.

Paper, Sec. 3.2: a spiral-convolution decoder. A linear layer maps the 68x3 landmark
displacements to features on the coarsest level of a mesh hierarchy built by quadric
decimation of the FLAME template (factor 4 per level: 5023, 1256, 314, 79, 20 vertices).
Then five spiral convolutions: the first four each followed by barycentric up-sampling to the
next finer level, the fifth at full resolution producing x, y, z (no activation), as in the
authors' released decoder. The animated mesh is the neutral mesh plus these displacements.

A spiral convolution gathers each vertex's spiral (itself, then its rings in a fixed cyclic
order) and applies one linear layer to the concatenated features (SpiralNet++).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn

from .mesh_hierarchy import MeshHierarchy, load_hierarchy


@dataclass
class S2DConfig:
    num_landmarks: int = 68
    # Feature width on the coarsest level, then the output width of each spiral convolution.
    filters: list = field(default_factory=lambda: [128, 64, 32, 32, 16, 3])
    activation: str = "elu"
    # Speech motion is a few millimetres; the network works in mm (input / scale, output *
    # scale) so its weights are O(1) and Adam's lr-sized steps stay small next to them.
    scale: float = 1e-3

    def to_dict(self) -> dict:
        return asdict(self)


class SpiralConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, spiral: torch.Tensor):
        super().__init__()
        self.register_buffer("spiral", spiral.long(), persistent=False)
        self.linear = nn.Linear(in_channels * spiral.shape[1], out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        gathered = x[:, self.spiral.reshape(-1)].reshape(b, n, -1)  # (B, N, S * C)
        return self.linear(gathered)


class Upsample(nn.Module):
    """Each fine vertex = barycentric mix of 3 coarse vertices (a fixed, sparse matrix)."""

    def __init__(self, index: torch.Tensor, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("index", index.long(), persistent=False)
        self.register_buffer("weight", weight.float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, self.index] * self.weight[None, :, :, None].to(x.dtype)).sum(dim=2)


class S2D(nn.Module):
    def __init__(self, config: S2DConfig, hierarchy: MeshHierarchy | None = None):
        super().__init__()
        self.config = c = config
        h = hierarchy or load_hierarchy()
        levels = len(h.level_sizes)
        if len(c.filters) != levels + 1:
            raise ValueError(f"S2DConfig.filters needs {levels + 1} entries for {levels} mesh levels.")
        self.coarse_size = int(h.level_sizes[-1])
        self.fc = nn.Linear(c.num_landmarks * 3, self.coarse_size * c.filters[0])
        self.convs = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i, level in enumerate(range(levels - 1, -1, -1)):  # coarsest -> full resolution
            spiral = torch.from_numpy(h.spirals[level])
            self.convs.append(SpiralConv(c.filters[i], c.filters[i + 1], spiral))
            if level > 0:
                self.ups.append(Upsample(torch.from_numpy(h.up_index[level - 1]), torch.from_numpy(h.up_weight[level - 1])))
        self.act = nn.ELU() if c.activation == "elu" else nn.ReLU()

    def forward(self, landmark_displacements: torch.Tensor) -> torch.Tensor:
        """(B, 68, 3) -> (B, 5023, 3) vertex displacements."""
        b = landmark_displacements.shape[0]
        x = landmark_displacements.reshape(b, -1) / self.config.scale
        x = self.fc(x).reshape(b, self.coarse_size, -1)
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < len(self.ups):
                x = self.ups[i](self.act(x))
        return x * self.config.scale
