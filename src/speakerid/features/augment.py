"""Feature-side augmentation, on the training device after the front end (training mode only):
SpecAugment and the GE2E project's noise on the mel spectrogram. ``(B,T,F), (B,) -> (B,T,F)``."""

import torch
import torchaudio
from torch import Tensor, nn

from speakerid.utils.masks import real_frames


class SpecAugment(nn.Module):
    """Random frequency and time masks per utterance (Park et al., 2019), with torchaudio's
    masking transforms; masked values are set to the utterance's mean feature value.

    Example:
        >>> aug = SpecAugment(freq_width=4, time_width=5).train()
        >>> aug(torch.randn(2, 50, 40), torch.tensor([50, 30])).shape
        torch.Size([2, 50, 40])
    """

    def __init__(
        self, freq_masks: int = 2, freq_width: int = 8, time_masks: int = 2, time_width: int = 10
    ) -> None:
        super().__init__()
        self.freq = nn.ModuleList(
            torchaudio.transforms.FrequencyMasking(freq_width, iid_masks=True)
            for _ in range(freq_masks)
        )
        self.time = nn.ModuleList(
            torchaudio.transforms.TimeMasking(time_width, iid_masks=True) for _ in range(time_masks)
        )

    def forward(self, feats: Tensor, frames: Tensor) -> Tensor:
        if not self.training:
            return feats
        x = feats.transpose(1, 2).unsqueeze(1)  # (B,1,F,T)
        mean = x.mean(dim=(2, 3), keepdim=True)
        x = x - mean  # mask to the mean: masks are zeros here
        for mask in [*self.freq, *self.time]:
            x = mask(x)
        real = real_frames(frames.to(feats.device), feats.shape[1])
        return ((x + mean).squeeze(1).transpose(1, 2)) * real[..., None]


class MelNoise(nn.Module):
    """Gaussian noise added to the (log-)mel features of real frames, ``std`` times each
    utterance's feature standard deviation (the GE2E project's noise-on-mel augmentation).

    Example:
        >>> MelNoise(0.1).train()(torch.zeros(1, 4, 3), torch.tensor([2]))[0, 2:].abs().sum()
        tensor(0.)
    """

    def __init__(self, std: float = 0.05) -> None:
        super().__init__()
        self.std = std

    def forward(self, feats: Tensor, frames: Tensor) -> Tensor:
        if not self.training or self.std <= 0:
            return feats
        real = real_frames(frames.to(feats.device), feats.shape[1])[..., None]
        scale = feats.std(dim=(1, 2), keepdim=True).clamp_min(1e-3) * self.std
        return feats + torch.randn_like(feats) * scale * real
