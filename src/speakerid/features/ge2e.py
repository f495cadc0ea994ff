"""The front end of Resemblyzer's GE2E encoder: linear (not log) 40-band mel power frames.

Matches ``resemblyzer.audio.wav_to_mel_spectrogram`` (librosa's ``melspectrogram``: 25 ms periodic
Hann windows every 10 ms, centred with zero padding, Slaney mel scale and area normalization),
after its volume normalization (raised to -30 dBFS, never lowered). Voice-activity trimming, the
third step of ``preprocess_wav``, is left to the data (it shortens audio; our pipelines keep
utterances whole).
"""

import torch
from torch import Tensor, nn
from torchaudio.transforms import MelSpectrogram

INT16_MAX = 2**15 - 1


class Ge2eMel(nn.Module):
    """``(B,S) waveforms, (B,) samples -> (B,T,F) mel power, (B,) frames``.

    ``frames`` is Resemblyzer's frame count of each utterance, ``samples // hop + 1``. In eval mode
    the batch is extended by ``pad_seconds`` of zeros first, so the last partial window of
    :class:`~speakerid.backbones.Ge2eLstm` (which may reach past the end, as Resemblyzer pads the
    waveform) sees the same zeros as there.

    Args:
        sample_rate: of the input.
        num_mels: mel bands (F).
        window_ms, hop_ms: frame length and step.
        target_dbfs: utterances quieter than this are raised to it (None: no normalization).
        pad_seconds: zeros appended in eval mode (at least one partial window, 1.6 s).

    Example:
        >>> mel = Ge2eMel()
        >>> feats, frames = mel(torch.zeros(2, 16000), torch.tensor([16000, 8000]))
        >>> feats.shape[-1], frames.tolist()
        (40, [101, 51])
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        num_mels: int = 40,
        window_ms: float = 25.0,
        hop_ms: float = 10.0,
        target_dbfs: float | None = -30.0,
        pad_seconds: float = 1.6,
    ) -> None:
        super().__init__()
        self.num_mels = num_mels
        self.hop = int(sample_rate * hop_ms / 1000)
        self.target_dbfs = target_dbfs
        self.pad = int(sample_rate * pad_seconds)
        self.mel = MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=int(sample_rate * window_ms / 1000),
            hop_length=self.hop,
            n_mels=num_mels,
            power=2.0,
            center=True,
            pad_mode="constant",
            norm="slaney",
            mel_scale="slaney",
        )

    def forward(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        wav = wav.float()
        if self.target_dbfs is not None:
            valid = torch.arange(wav.shape[1], device=wav.device) < lengths[:, None]
            power = ((wav * INT16_MAX) ** 2 * valid).sum(1) / lengths.clamp_min(1)
            dbfs = 10 * torch.log10(power.clamp_min(1e-20) / INT16_MAX**2)
            change = (self.target_dbfs - dbfs).clamp_min(0)  # raised, never lowered
            wav = wav * (10 ** (change / 20))[:, None] * valid
        if not self.training:
            wav = nn.functional.pad(wav, (0, self.pad))
        feats = self.mel(wav).transpose(1, 2)  # (B,T,F)
        return feats, lengths // self.hop + 1
