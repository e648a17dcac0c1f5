"""wav2vec 2.0 hidden states (the paper's encoder), loaded from a local folder only.

The weights cannot be downloaded here, so the user points to a folder holding a
transformers ``Wav2Vec2Model`` (config.json + weights); we never reach the network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import EncoderUnavailable
from .base import SpeechEncoder


class Wav2Vec2Encoder(SpeechEncoder):
    name = "wav2vec2"
    rate = 50.0

    def __init__(self, model_dir=None, device: str = "cpu"):
        if model_dir is None:
            raise EncoderUnavailable(
                "The wav2vec2 encoder needs a local folder with a transformers Wav2Vec2Model "
                "(config.json and weights); none was given."
            )
        folder = Path(model_dir)
        if not (folder / "config.json").is_file():
            raise EncoderUnavailable(f"No wav2vec2 model in {folder}: config.json is missing.")
        try:
            import torch
            from transformers import Wav2Vec2Model
        except ImportError as exc:
            raise EncoderUnavailable(f"The wav2vec2 encoder needs torch and transformers ({exc}).") from None
        try:
            self.model = Wav2Vec2Model.from_pretrained(str(folder), local_files_only=True).eval().to(device)
        except Exception as exc:
            raise EncoderUnavailable(f"Cannot load the wav2vec2 model in {folder}: {exc}") from None
        self.torch, self.device = torch, device
        self.dim = int(self.model.config.hidden_size)

    def frames(self, samples16k: np.ndarray) -> np.ndarray:
        x = np.asarray(samples16k, np.float32)
        x = (x - x.mean()) / (x.std() + 1e-7)  # the feature extractor's normalisation
        if len(x) < 640:
            x = np.pad(x, (0, 640 - len(x)))
        with self.torch.no_grad():
            states = self.model(self.torch.from_numpy(x)[None].to(self.device)).last_hidden_state
        return states[0].float().cpu().numpy()
