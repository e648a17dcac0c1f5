"""Augmentation of S2L's training crops in the encoder's feature space (training only).

The audio augmentation (augment.py) is baked into the corpus once; these are drawn anew for
every crop of every epoch, so the network never sees the same voice twice:

  shrink      features drawn towards the training mean by a factor in [shrink, 1]: real
              recordings' hama features vary ~16 % less than the synthetic voices'
  tilt        (spectral features) a random level and spectral tilt across channels, in training
              standard deviations: real microphones sit ~0.5 sd from the synthetic voices' mean
  warp        (log-mel) the frequency axis scaled by a factor in [1 - warp, 1 + warp], as a
              longer or shorter vocal tract scales the formants (vocal tract length perturbation,
              Jaitly & Hinton 2013): a new speaker per crop instead of the corpus' 69 voices
  non-speech  a share of crops replaced by steady non-speech sounds (non_speech.py) whose
              target is the rest pose with neutral codes
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class FeatureAugment:
    shrink: float = 1.0         # 1: off
    tilt: float = 0.0           # sd; 0: off
    warp: float = 0.0           # 0: off (log-mel features only)
    non_speech: float = 0.0     # share of crops; 0: off

    def __call__(self, feats, target, codes, mean, std, rng: np.random.Generator, bank=None):
        """One batch (B, T_enc, D) features, (B, T, 68, 3) targets, (B, T, C) codes -> augmented."""
        b = len(feats)
        if self.shrink < 1.0:
            alpha = torch.from_numpy(rng.uniform(self.shrink, 1.0, (b, 1, 1)).astype(np.float32))
            feats = mean + (feats - mean) * alpha
        if self.tilt > 0:
            level, tilt = rng.normal(0.0, self.tilt, (2, b, 1, 1)).astype(np.float32)
            ramp = torch.linspace(-1.0, 1.0, feats.shape[-1])
            feats = feats + std * (torch.from_numpy(level) + torch.from_numpy(tilt) * ramp)
        if self.warp > 0:
            feats = torch.stack([f @ mel_warp_matrix(float(a)).T for f, a in
                                 zip(feats, rng.uniform(1 - self.warp, 1 + self.warp, b))])
        if self.non_speech > 0 and bank:
            swap = np.flatnonzero(rng.random(b) < self.non_speech)
            if len(swap):
                feats, target, codes = feats.clone(), target.clone(), codes.clone()
                for i in swap:
                    clip = bank[int(rng.integers(len(bank)))]
                    s = int(rng.integers(0, len(clip) - feats.shape[1] + 1))
                    feats[i] = torch.from_numpy(clip[s:s + feats.shape[1]].astype(np.float32))
                    target[i] = 0.0
                    codes[i] = 0.0
        return feats, target, codes


def mel_warp_matrix(alpha: float) -> torch.Tensor:
    """(80, 80) linear map of log-mel frames to those of a spectrum scaled in frequency by
    ``alpha`` (X'(f) = X(f / alpha)): each band reads the bands around f_c / alpha."""
    from ..encoders.mel import F_MAX, F_MIN, N_MELS, _hz_to_mel, _mel_to_hz
    edges = _mel_to_hz(np.linspace(_hz_to_mel(F_MIN), _hz_to_mel(F_MAX), N_MELS + 2))
    centres = edges[1:-1]
    pos = np.interp(centres / alpha, centres, np.arange(N_MELS))     # fractional source band
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, N_MELS - 1)
    w = pos - lo
    m = np.zeros((N_MELS, N_MELS), np.float32)
    m[np.arange(N_MELS), lo] += 1 - w
    m[np.arange(N_MELS), hi] += w
    return torch.from_numpy(m)
