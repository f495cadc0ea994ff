"""Augmentation of whole training batches on the device, after collation: SpeechBrain's
``Augmenter`` (parallel augmented copies concatenated to the clean batch) takes these as its
augmentations, beside its own (``DropFreq``, ``DropChunk``, ...)."""

import numpy as np
import torch
from torch import Tensor, nn


class RowWise(nn.Module):
    """A per-crop waveform augmentation of :mod:`speakerid.data.augment` (``(wav, rng) -> wav``:
    MUSAN/generated noise, RIRS/simulated reverberation) applied to every row of a ``(B,S)``
    batch, as a module SpeechBrain's ``Augmenter`` can call. Rows are augmented on the CPU with
    a generator seeded from torch's RNG (so ``seed_everything`` makes runs repeatable) and put back
    on the batch's device; their lengths do not change.

    Example:
        >>> from speakerid.data.augment import AdditiveNoise
        >>> RowWise(AdditiveNoise(probability=1.0))(torch.ones(2, 1600) * 0.1).shape
        torch.Size([2, 1600])
    """

    def __init__(self, augment) -> None:
        super().__init__()
        self.augment = augment

    def forward(self, waveforms: Tensor) -> Tensor:
        rng = np.random.default_rng(int(torch.randint(2**62, ())))
        rows = waveforms.detach().float().cpu().numpy()
        out = np.stack([self.augment(row, rng) for row in rows])
        return torch.from_numpy(out).to(waveforms.device, waveforms.dtype)
