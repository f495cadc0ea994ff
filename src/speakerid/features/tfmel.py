"""The TensorFlow-style log mel front end of ReDimNet (WeSpeaker's ``tfmel``), batched."""

import torch
from torch import Tensor, nn

from speakerid.utils.masks import real_frames


def _hz_to_mel(hz: Tensor) -> Tensor:
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def tf_mel_banks(num_mels: int, bins: int, sample_rate: int, f_min: float, f_max: float) -> Tensor:
    """Triangular mel filters in TensorFlow's ``linear_to_mel_weight_matrix`` layout: ``bins``
    spectrum bins spread evenly over 0..Nyquist, bin 0 (DC) unweighted -> (bins, num_mels).

    Example:
        >>> banks = tf_mel_banks(72, 256, 16000, 20.0, 7600.0)
        >>> banks.shape, banks[0].abs().sum().item()
        (torch.Size([256, 72]), 0.0)
    """
    edges = torch.linspace(
        _hz_to_mel(torch.tensor(f_min, dtype=torch.float64)).item(),
        _hz_to_mel(torch.tensor(f_max, dtype=torch.float64)).item(),
        num_mels + 2,
        dtype=torch.float64,
    )
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]  # (F,) each
    nyquist = sample_rate // 2
    spectrum = _hz_to_mel(torch.linspace(0, nyquist, bins, dtype=torch.float64))[1:, None]
    rising = (spectrum - lower) / (center - lower)  # (bins-1, F)
    falling = (upper - spectrum) / (upper - center)
    weights = torch.minimum(rising, falling).clamp_min(0.0)
    return torch.cat([torch.zeros(1, num_mels, dtype=torch.float64), weights]).float()


class TfMel(nn.Module):
    """Log mel energies as ReDimNet computes them (WeSpeaker's ``tfmel`` front end, from the
    ReDimNet authors' TensorFlow-compatible features): per-utterance waveform standardization,
    pre-emphasis, frames padded by half a hop at both ends, symmetric Hamming window, the
    power of the first ``n_fft/2`` DFT bins (Nyquist dropped), TensorFlow-style mel filters
    (:func:`tf_mel_banks`), ``log(max(mel, eps) + eps)``, each utterance minus its mean frame.

    Yakovlev et al., "Reshape Dimensions Network for Speaker Recognition", Interspeech 2024
    (https://arxiv.org/abs/2407.18223). WeSpeaker computes every statistic over the whole
    (padded) tensor; here the waveform statistics use each utterance's own samples, the
    pre-emphasized signal is zero past its end and the mean its own frames, so an utterance in a
    padded batch gets the features it gets alone (padded frames come out as zeros).

    Args:
        sample_rate: input rate in Hz.
        num_mels: filterbank channels (F; WeSpeaker's ReDimNet2 recipe uses 72).
        n_fft: DFT size; the first ``n_fft/2`` bins are kept.
        win_length, hop_length: analysis window and hop in samples.
        f_min, f_max: filterbank edges in Hz.
        preemphasis: pre-emphasis coefficient (0 for none); the first sample's predecessor is
            the second sample (reflection), as in WeSpeaker.
        normalize_signal: standardize each waveform (zero mean, unit standard deviation).
        eps: floor of the power spectrum and mel energies, added before the log.

    Example:
        >>> tfmel = TfMel(num_mels=72)
        >>> feats, frames = tfmel(torch.randn(2, 16000), torch.tensor([16000, 8000]))
        >>> feats.shape, frames.tolist()
        (torch.Size([2, 99, 72]), [99, 49])
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        num_mels: int = 72,
        n_fft: int = 512,
        win_length: int = 400,
        hop_length: int = 160,
        f_min: float = 20.0,
        f_max: float = 7600.0,
        preemphasis: float = 0.97,
        normalize_signal: bool = True,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.num_mels = num_mels
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.preemphasis = preemphasis
        self.normalize_signal = normalize_signal
        self.eps = eps
        window = torch.hamming_window(win_length, periodic=False, dtype=torch.float64)
        banks = tf_mel_banks(num_mels, n_fft // 2, sample_rate, f_min, f_max)
        self.register_buffer("window", window.float(), persistent=False)
        self.register_buffer("mel_banks", banks, persistent=False)  # (n_fft/2, F)

    def num_frames(self, lengths: Tensor) -> Tensor:
        """Frames of ``lengths`` samples, half a hop of zeros at both ends."""
        padded = lengths + 2 * (self.hop_length // 2)
        return ((padded - self.win_length) // self.hop_length + 1).clamp_min(0)

    def _waveform(self, wav: Tensor, lengths: Tensor) -> Tensor:
        """(B,S) -> (B,S): standardized over each utterance's samples, pre-emphasized, zero past
        its end."""
        mask = real_frames(lengths, wav.shape[1]).to(wav.dtype)  # (B,S)
        wav = wav * mask
        if self.normalize_signal:
            count = lengths.clamp_min(1)[:, None].to(wav.dtype)
            mean = wav.sum(1, keepdim=True) / count
            std = (((wav - mean) * mask).square().sum(1, keepdim=True) / count).sqrt()
            wav = (wav - mean) / (std + self.eps)
        if self.preemphasis:
            previous = torch.cat([wav[:, 1:2], wav[:, :-1]], dim=1)  # x[-1] = x[1]: reflection
            wav = wav - self.preemphasis * previous
        return wav * mask

    def forward(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B,S) waveforms and (B,) sample counts -> (B,T,F) features and (B,) frame counts."""
        wav = wav.float()
        lengths = lengths.to(wav.device)
        minimum = max(self.win_length - 2 * (self.hop_length // 2), 2)
        if wav.shape[1] < minimum:  # at least one frame
            wav = nn.functional.pad(wav, (0, minimum - wav.shape[1]))
        wav = self._waveform(wav, lengths)
        half = self.hop_length // 2
        frames = nn.functional.pad(wav, (half, half)).unfold(1, self.win_length, self.hop_length)
        spectrum = torch.fft.rfft(frames * self.window, n=self.n_fft)[..., : self.n_fft // 2]
        power = (spectrum.real.square() + spectrum.imag.square()).clamp(self.eps, 1 / self.eps)
        mel = (power @ self.mel_banks).clamp(self.eps, 1 / self.eps)  # (B,T,F)
        feats = (mel + self.eps).log()
        num_frames = self.num_frames(lengths).clamp(max=feats.shape[1])
        mask = real_frames(num_frames, feats.shape[1])[..., None]  # (B,T,1)
        mean = (feats * mask).sum(1, keepdim=True) / num_frames.clamp_min(1)[:, None, None]
        return (feats - mean) * mask, num_frames
