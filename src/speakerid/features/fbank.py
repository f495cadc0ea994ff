"""Kaldi-compatible log mel filterbank, computed for a whole batch at once."""

import torch
from torch import Tensor, nn
from torchaudio.compliance.kaldi import get_mel_banks

from speakerid.errors import ConfigError
from speakerid.utils.masks import real_frames

_WINDOWS = {  # Kaldi's window functions (feature-window.cc), symmetric
    "povey": lambda n: torch.hann_window(n, periodic=False, dtype=torch.float64).pow(0.85),
    "hamming": lambda n: torch.hamming_window(n, periodic=False, dtype=torch.float64),
    "hanning": lambda n: torch.hann_window(n, periodic=False, dtype=torch.float64),
}


class KaldiFbank(nn.Module):
    """Log mel filterbank energies as Kaldi's ``compute-fbank-feats`` computes them.

    Matches ``torchaudio.compliance.kaldi.fbank`` (povey window, DC removal, pre-emphasis,
    ``snip_edges``) frame for frame, but on a padded batch in one pass rather than a Python loop
    per utterance. Optional per-utterance mean normalization (CMN) uses only real frames; padded
    frames come out as zeros.

    Args:
        sample_rate: input rate in Hz.
        num_mels: filterbank channels (F).
        frame_length_ms, frame_shift_ms: analysis window and hop.
        low_freq, high_freq: filterbank edges in Hz; ``high_freq <= 0`` is an offset from Nyquist.
        preemphasis: pre-emphasis coefficient.
        dither: Gaussian dither (on the int16 scale) added in training mode only, to the waveform
            (Kaldi draws it per frame; overlapping frames here share it).
        mean_norm: subtract each utterance's mean feature vector.
        frame_norm: normalize each frame across its bins (zero mean, unit variance), as Deep
            Speaker does; applied after ``mean_norm``.
        int16_scale: scale [-1, 1] input to the int16 range first, as Kaldi and WeSpeaker do.
        window: ``povey`` (Kaldi's default), ``hamming`` (WeSpeaker's) or ``hanning``.

    Example:
        >>> fbank = KaldiFbank(num_mels=80)
        >>> feats, frames = fbank(torch.randn(2, 16000), torch.tensor([16000, 8000]))
        >>> feats.shape, frames.tolist()
        (torch.Size([2, 98, 80]), [98, 48])
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        num_mels: int = 80,
        frame_length_ms: float = 25.0,
        frame_shift_ms: float = 10.0,
        low_freq: float = 20.0,
        high_freq: float = 0.0,
        preemphasis: float = 0.97,
        dither: float = 0.0,
        mean_norm: bool = True,
        int16_scale: bool = True,
        frame_norm: bool = False,
        window: str = "povey",
    ) -> None:
        super().__init__()
        if window not in _WINDOWS:
            raise ConfigError(
                f"KaldiFbank: window must be one of {sorted(_WINDOWS)}, not {window!r}"
            )
        self.num_mels = num_mels
        self.window_size = int(sample_rate * frame_length_ms / 1000)
        self.shift = int(sample_rate * frame_shift_ms / 1000)
        self.n_fft = 1 << (self.window_size - 1).bit_length()
        self.preemphasis = preemphasis
        self.dither = dither
        self.mean_norm = mean_norm
        self.frame_norm = frame_norm
        self.scale = 32768.0 if int16_scale else 1.0
        window = _WINDOWS[window](self.window_size)
        banks, _ = get_mel_banks(
            num_mels, self.n_fft, float(sample_rate), low_freq, high_freq, 100.0, -500.0, 1.0
        )
        banks = nn.functional.pad(banks, (0, 1))  # Nyquist bin gets no weight, as in Kaldi
        self.register_buffer("window", window.float(), persistent=False)
        self.register_buffer(
            "mel_banks", banks.T.contiguous().float(), persistent=False
        )  # (n_fft/2+1, F)

    def num_frames(self, lengths: Tensor) -> Tensor:
        """Frames Kaldi makes of ``lengths`` samples (``snip_edges``)."""
        return ((lengths - self.window_size) // self.shift + 1).clamp_min(0)

    def _power_spectrum(self, wav: Tensor) -> Tensor:
        """(B,S) -> (B,T,n_fft/2+1): per frame, remove DC, pre-emphasize, window, |FFT|^2.

        Kaldi pre-emphasizes each DC-free frame, ``y[j] = x[j] - m - c (x[j-1] - m)``, with
        ``x[-1] = x[0]``. For j >= 1 that is ``e[j] - (1-c) m`` where ``e = x - c x_prev`` is
        computed once on the waveform, so only one (B,T,W) tensor is ever materialized: the
        frame-by-frame chain of copies made this memory-bound and slower than a per-utterance loop.
        """
        c = self.preemphasis
        frames = wav.unfold(1, self.window_size, self.shift)  # (B,T,W), a view
        mean = frames.mean(dim=-1, keepdim=True)  # (B,T,1)
        emphasized = torch.cat([wav[:, :1], wav[:, 1:] - c * wav[:, :-1]], dim=1)  # (B,S)
        out = emphasized.unfold(1, self.window_size, self.shift) - (1 - c) * mean  # (B,T,W)
        out[..., 0] = (1 - c) * (frames[..., 0] - mean[..., 0])  # the frame's own first sample
        out.mul_(self.window)
        spectrum = torch.fft.rfft(out, n=self.n_fft)
        return spectrum.real.square() + spectrum.imag.square()

    def forward(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B,S) waveforms and (B,) sample counts -> (B,T,F) features and (B,) frame counts."""
        wav = wav.float() * self.scale
        if wav.shape[1] < self.window_size:
            wav = nn.functional.pad(wav, (0, self.window_size - wav.shape[1]))
        if self.training and self.dither > 0:
            wav = wav + torch.randn_like(wav) * self.dither
        power = self._power_spectrum(wav)  # (B,T,n_fft/2+1)
        feats = (power @ self.mel_banks).clamp_min(torch.finfo(torch.float32).eps).log()  # (B,T,F)
        num_frames = self.num_frames(lengths)
        mask = real_frames(num_frames, feats.shape[1]).unsqueeze(-1)
        if self.mean_norm:
            mean = (feats * mask).sum(dim=1, keepdim=True) / num_frames.clamp_min(1)[:, None, None]
            feats = feats - mean
        if self.frame_norm:
            feats = (feats - feats.mean(-1, keepdim=True)) / feats.std(-1, keepdim=True).clamp_min(
                1e-5
            )
        return feats * mask, num_frames
