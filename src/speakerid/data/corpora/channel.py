"""Recording channels for the synthetic corpus: one per session, like one video in VoxCeleb.

A channel is a random equalizer with a band limit, background noise of a random colour at a
session SNR, optional reverberation and a gain. ``difficulty`` scales all of them; 0 is clean.
"""

from dataclasses import dataclass

import numpy as np
from scipy import fft, signal

_EQ_TAPS = 255


@dataclass(frozen=True)
class Channel:
    """Parameters of one session's channel; :meth:`apply` renders an utterance through it."""

    response: np.ndarray  # (taps,) equalizer and band limit, convolved with the room if any
    delay: int  # samples by which ``response`` delays the signal
    noise_colour: float  # spectral exponent: 0 white, 1 pink, 2 brown
    snr_db: float
    gain_db: float

    def apply(self, wav: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return ``wav`` (S,) as heard through this channel, peak-limited to [-1, 1]."""
        x = signal.oaconvolve(wav, self.response)[self.delay : self.delay + len(wav)]
        speech_power = float(np.mean(x**2)) + 1e-12
        noise = coloured_noise(len(x), self.noise_colour, rng)
        snr = self.snr_db + rng.uniform(-2.0, 2.0)  # the room is never exactly the same
        x = x + noise * np.sqrt(speech_power / 10 ** (snr / 10))
        x = x * 10 ** (self.gain_db / 20)
        peak = float(np.max(np.abs(x)))
        return (x / peak * 0.95 if peak > 0.95 else x).astype(np.float32)


def coloured_noise(num_samples: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-power noise whose power spectrum falls as 1/f**exponent."""
    size = fft.next_fast_len(num_samples, real=True)  # awkward lengths make FFTs 10x slower
    freqs = fft.rfftfreq(size)
    spectrum = rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs))
    freqs[0] = freqs[1]
    noise = fft.irfft(spectrum / freqs ** (exponent / 2), n=size)[:num_samples]
    return noise / (np.std(noise) + 1e-12)


def random_channel(rng: np.random.Generator, sample_rate: int, difficulty: float) -> Channel:
    """Draw a session channel; every effect grows with ``difficulty`` (0 = clean, 1 = default)."""
    nyquist = sample_rate / 2
    low_cut = 20 + difficulty * rng.uniform(30, 250)
    high_cut = nyquist - difficulty * rng.uniform(0.05, 0.55) * nyquist
    # A smooth random response in dB: a tilt plus three bumps on a log-frequency axis.
    freqs = np.linspace(0, nyquist, 129)
    logf = np.log2(np.maximum(freqs, 50) / 1000)
    gain_db = difficulty * rng.uniform(-3, 3) * logf
    for _ in range(3):
        centre, width = rng.uniform(-3, 3), rng.uniform(0.3, 1.2)
        gain_db += difficulty * rng.uniform(-6, 6) * np.exp(-0.5 * ((logf - centre) / width) ** 2)
    gain = 10 ** (gain_db / 20) * (freqs >= low_cut) * (freqs <= high_cut)
    response = signal.firwin2(_EQ_TAPS, freqs, gain, fs=sample_rate)
    if rng.uniform() < 0.5 * difficulty:
        rt60 = rng.uniform(0.15, 0.6)
        t = np.arange(int(rt60 * sample_rate)) / sample_rate
        rir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
        rir[0] = 1.0 / rng.uniform(0.3, 1.0)  # direct path
        response = np.convolve(response, rir / np.sqrt(np.sum(rir**2)))
    return Channel(
        response=response,
        delay=_EQ_TAPS // 2,
        noise_colour=float(rng.uniform(0, 2)),
        snr_db=float(45 - difficulty * rng.uniform(15, 35)),
        gain_db=float(-difficulty * rng.uniform(0, 12)),
    )
