"""More front ends: Tacotron-style log-mel, MFCC, the spectrogram image, the raw waveform.

All follow the front-end contract ``(B,S), (B,) samples -> (B,T,F), (B,) frames``; padded frames
come out as zeros.
"""

import torch
import torchaudio
from torch import Tensor, nn

from speakerid.utils.masks import real_frames


def _masked(feats: Tensor, frames: Tensor) -> Tensor:
    return feats * real_frames(frames.to(feats.device), feats.shape[1])[..., None]


class LogMel(nn.Module):
    """Log mel magnitude spectrogram as the GE2E project (and Tacotron) computes it:
    ``log(max(mel(|STFT|), 1e-5))``, Hann window, centred frames.

    The original ran at 22.05 kHz with n_fft 1024, hop 256, window 1024, 80 mels, fmin 0, fmax
    8000; ``conf/features/log_mel.yaml`` keeps the same durations at 16 kHz (window 743, hop 186).

    Example:
        >>> feats, frames = LogMel()(torch.randn(2, 16000), torch.tensor([16000, 8000]))
        >>> feats.shape, frames.tolist()
        (torch.Size([2, 87, 80]), [87, 44])
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        win_length: int = 743,
        hop_length: int = 186,
        num_mels: int = 80,
        f_min: float = 0.0,
        f_max: float = 8000.0,
        floor: float = 1e-5,
    ) -> None:
        super().__init__()
        self.num_mels = num_mels
        self.hop_length = hop_length
        self.floor = floor
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate, n_fft, win_length, hop_length, f_min, f_max, n_mels=num_mels, power=1.0
        )

    def forward(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        feats = self.mel(wav.float()).clamp_min(self.floor).log().transpose(1, 2)  # (B,T,F)
        frames = (lengths // self.hop_length + 1).clamp(max=feats.shape[1])
        return _masked(feats, frames), frames


class SpeechbrainFbank(nn.Module):
    """SpeechBrain's log mel filterbank (``speechbrain.lobes.features.Fbank``: 25 ms Hamming
    window, 10 ms hop, centred frames, 0 to Nyquist, 80 dB dynamic range) with SpeechBrain's
    sentence mean normalization (``InputNormalization(norm_type="sentence", std_norm=False)``:
    each utterance minus the mean of its own frames), as SpeechBrain's VoxCeleb ECAPA recipe.

    Example:
        >>> feats, frames = SpeechbrainFbank()(torch.randn(2, 16000), torch.tensor([16000, 8000]))
        >>> feats.shape, frames.tolist()
        (torch.Size([2, 101, 80]), [101, 51])
    """

    def __init__(self, sample_rate: int = 16000, num_mels: int = 80, mean_norm: bool = True):
        super().__init__()
        from speechbrain.lobes.features import Fbank

        self.num_mels = num_mels
        self.mean_norm = mean_norm
        self.hop_length = sample_rate // 100
        self.fbank = Fbank(sample_rate=sample_rate, n_mels=num_mels, left_frames=0, right_frames=0)

    def forward(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        feats = self.fbank(wav.float())  # (B,T,F)
        frames = (lengths.to(feats.device) // self.hop_length + 1).clamp(max=feats.shape[1])
        if self.mean_norm:
            mask = real_frames(frames, feats.shape[1])[..., None]
            mean = (feats * mask).sum(1, keepdim=True) / frames.clamp_min(1)[:, None, None]
            feats = feats - mean
        return _masked(feats, frames), frames


class Mfcc(nn.Module):
    """MFCCs (torchaudio's, DCT-II of log mel energies), with per-utterance mean normalization;
    ``num_mels`` is the number of coefficients (the features' size F), ``num_filters`` the bank's.

    Example:
        >>> feats, frames = Mfcc(num_mels=20)(torch.randn(2, 16000), torch.tensor([16000, 8000]))
        >>> feats.shape, frames.tolist()
        (torch.Size([2, 101, 20]), [101, 51])
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        num_mels: int = 40,
        num_filters: int = 40,
        n_fft: int = 512,
        win_length: int = 400,
        hop_length: int = 160,
        mean_norm: bool = True,
    ) -> None:
        super().__init__()
        self.num_mels = num_mels
        self.hop_length = hop_length
        self.mean_norm = mean_norm
        self.mfcc = torchaudio.transforms.MFCC(
            sample_rate,
            num_mels,
            melkwargs={
                "n_fft": n_fft,
                "win_length": win_length,
                "hop_length": hop_length,
                "n_mels": num_filters,
            },
        )

    def forward(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        feats = self.mfcc(wav.float()).transpose(1, 2)  # (B,T,F)
        frames = (lengths // self.hop_length + 1).clamp(max=feats.shape[1])
        if self.mean_norm:
            masked = _masked(feats, frames)
            feats = feats - masked.sum(1, keepdim=True) / frames.clamp_min(1)[:, None, None]
        return _masked(feats, frames), frames


class SpectrogramImage(nn.Module):
    """The ResNet-18 system's input: a log-mel spectrogram normalized per frame and resized to a
    square image.

    Per utterance: pad or crop to ``seconds`` (the original promised a fixed duration but never
    applied it; zero-padded at the end, cropped from the start), peak-normalize, STFT (n_fft 512,
    hop 160, Hann) -> power -> 40 mels -> ``log(x + 1e-9)`` -> per frame ``max_abs`` (divide by
    the largest magnitude across bins; the original's "frequency-bin" normalization) or
    ``min_max`` (to [0, 1]) -> bilinear resize to ``num_mels x num_mels`` (224). The backbone
    repeats it to 3 channels. Every image has ``num_mels`` frames.

    Example:
        >>> to_image = SpectrogramImage(num_mels=64)
        >>> image, frames = to_image(torch.randn(2, 16000), torch.tensor([16000, 8000]))
        >>> image.shape, frames.tolist()
        (torch.Size([2, 64, 64]), [64, 64])
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        seconds: float = 3.0,
        n_fft: int = 512,
        hop_length: int = 160,
        mels: int = 40,
        norm: str = "max_abs",
        num_mels: int = 224,
    ) -> None:
        super().__init__()
        if norm not in ("max_abs", "min_max"):
            raise ValueError(f"norm must be 'max_abs' or 'min_max', got {norm!r}")
        self.num_mels = num_mels
        self.samples = int(seconds * sample_rate)
        self.norm = norm
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate, n_fft, hop_length=hop_length, n_mels=mels, power=2.0
        )

    def forward(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        wav = wav.float()
        wav = wav * real_frames(lengths.to(wav.device), wav.shape[1])  # nothing past the end
        if wav.shape[1] < self.samples:
            wav = nn.functional.pad(wav, (0, self.samples - wav.shape[1]))
        wav = wav[:, : self.samples]
        wav = wav / wav.abs().amax(1, keepdim=True).clamp_min(1e-9)
        spec = (self.mel(wav) + 1e-9).log().transpose(1, 2)  # (B,T,mels)
        if self.norm == "max_abs":
            spec = spec / spec.abs().amax(-1, keepdim=True).clamp_min(1e-9)
        else:
            low, high = spec.amin(-1, keepdim=True), spec.amax(-1, keepdim=True)
            spec = (spec - low) / (high - low).clamp_min(1e-9)
        image = nn.functional.interpolate(
            spec.unsqueeze(1),
            size=(self.num_mels, self.num_mels),
            mode="bilinear",
            align_corners=False,
        ).squeeze(1)
        return image, torch.full_like(lengths, self.num_mels)


class Waveform(nn.Module):
    """No analysis: the samples themselves as (B,S,1) "features", for raw-waveform encoders.

    Example:
        >>> feats, frames = Waveform()(torch.randn(2, 100), torch.tensor([100, 50]))
        >>> feats.shape, frames.tolist()
        (torch.Size([2, 100, 1]), [100, 50])
    """

    def __init__(self, num_mels: int = 1) -> None:
        super().__init__()
        if num_mels != 1:
            raise ValueError(f"a waveform has one feature per sample, not num_mels={num_mels}")
        self.num_mels = 1

    def forward(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        return _masked(wav.float().unsqueeze(-1), lengths), lengths
