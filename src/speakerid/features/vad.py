"""Voice activity detection as waveform transforms, ``(B,S), (B,) -> (B,S'), (B,)``, applied
before a front end by :class:`VadFrontEnd` (so on the training device, batched)."""

import torch
from torch import Tensor, nn


class EnergyVad(nn.Module):
    """Deep Speaker's energy VAD: keep each utterance from its first to its last sample whose
    energy (x²) exceeds ``ratio`` times the utterance's ``quantile`` energy.

    Example:
        >>> wav = torch.cat([torch.zeros(1, 100), torch.ones(1, 50), torch.zeros(1, 100)], 1)
        >>> EnergyVad(quantile=0.5)(wav, torch.tensor([250]))[1].tolist()
        [50]
    """

    def __init__(self, quantile: float = 0.95, ratio: float = 1.0) -> None:
        super().__init__()
        self.quantile = quantile
        self.ratio = ratio

    def forward(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        out, kept = torch.zeros_like(wav), lengths.clone()
        for i, length in enumerate(lengths.tolist()):
            energy = wav[i, :length].float().square()
            threshold = self.ratio * torch.quantile(energy, self.quantile)
            loud = (energy > threshold).nonzero().flatten()
            if len(loud) == 0:  # flat: keep it all
                out[i, :length] = wav[i, :length]
                continue
            start, end = int(loud[0]), int(loud[-1]) + 1
            out[i, : end - start] = wav[i, start:end]
            kept[i] = end - start
        return out[:, : int(kept.max())], kept


class SplVad(nn.Module):
    """The chunk VAD: split into ``chunk_ms`` chunks, keep those whose sound pressure level,
    ``20 log10(rms / 2e-5)`` with full scale taken as 1 Pa, exceeds ``threshold_db``; the kept
    chunks are joined. An utterance with no loud chunk is kept whole.

    Example:
        >>> wav = torch.cat([torch.full((1, 800), 1e-4), torch.full((1, 800), 0.1)], 1)
        >>> SplVad(chunk_ms=50, threshold_db=40)(wav, torch.tensor([1600]))[1].tolist()
        [800]
    """

    def __init__(
        self, sample_rate: int = 16000, chunk_ms: float = 50.0, threshold_db: float = 40.0
    ):
        super().__init__()
        self.chunk = int(sample_rate * chunk_ms / 1000)
        self.threshold_db = threshold_db

    def forward(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        out, kept = torch.zeros_like(wav), lengths.clone()
        for i, length in enumerate(lengths.tolist()):
            usable = length // self.chunk * self.chunk
            if usable == 0:
                out[i, :length] = wav[i, :length]
                continue
            chunks = wav[i, :usable].float().reshape(-1, self.chunk)
            rms = chunks.square().mean(-1).sqrt()
            loud = 20 * torch.log10(rms.clamp_min(1e-12) / 2e-5) > self.threshold_db
            if not loud.any():
                out[i, :length] = wav[i, :length]
                continue
            voiced = wav[i, :usable].reshape(-1, self.chunk)[loud].flatten()
            out[i, : len(voiced)] = voiced
            kept[i] = len(voiced)
        return out[:, : int(kept.max())], kept


class VadFrontEnd(nn.Module):
    """A VAD, then a front end: ``features(*vad(wav, lengths))``. ``num_mels``, when given (the
    configs interpolate it), must be the front end's.

    ``train_crop_samples`` > 0: in training, each voiced waveform is then cut to a random span of
    that many samples (Deep Speaker: VAD first, then fixed 160-frame crops — give the loader
    longer crops so that enough voiced signal is left); evaluation keeps whole utterances.
    """

    def __init__(
        self,
        vad: nn.Module,
        features: nn.Module,
        num_mels: int | None = None,
        train_crop_samples: int = 0,
    ) -> None:
        super().__init__()
        self.train_crop_samples = train_crop_samples
        if num_mels is not None and num_mels != features.num_mels:
            raise ValueError(f"num_mels={num_mels}, but the front end makes {features.num_mels}")
        self.vad = vad
        self.features = features
        self.num_mels = features.num_mels

    def forward(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        wav, lengths = self.vad(wav, lengths)
        crop = self.train_crop_samples
        if self.training and crop and wav.shape[1] > crop:
            out = torch.zeros(len(wav), crop, dtype=wav.dtype, device=wav.device)
            for i, length in enumerate(lengths.tolist()):
                start = int(torch.randint(max(1, length - crop + 1), ()))
                span = wav[i, start : start + crop]
                out[i, : len(span)] = span
            wav, lengths = out, lengths.clamp(max=crop)
        return self.features(wav, lengths)
