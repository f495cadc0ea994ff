"""Does a recording contain speech at all? A cheap gate before a model scores it.

A model embeds anything: two files of digital silence score 1.0 against each other, white noise
against mains hum 0.7. Speech is never steady — syllables, pauses and pitch make its short-time
energy swing by tens of dB — while silence, a hum, a tone or steady noise barely move. The gate
refuses a file that is too short, digitally silent, or whose frame energies (25 ms frames, 10 ms
hop) span less than ``min_spread_db`` between their 10th and 95th percentiles.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SpeechGate:
    """Thresholds of the gate (``speech_gate`` in ``conf/verify.yaml``, ``conf/identify.yaml``).

    Args:
        min_seconds: shorter files are refused (the front ends need a few frames).
        min_spread_db: frame-energy spread (95th - 10th percentile) below which a file holds no
            speech. The built-in corpus's noisiest files (10 dB SNR) spread by 8.6 dB or more;
            white noise by under 1 dB, a 50 Hz hum by 0.
        silence: peak amplitude at or below which a file is digital silence.

    Example:
        >>> gate = SpeechGate()
        >>> gate.problem(np.zeros(16000, dtype=np.float32), 16000)
        'digital silence (peak 0)'
    """

    min_seconds: float = 0.1
    min_spread_db: float = 4.0
    silence: float = 1e-4

    def problem(self, wav: np.ndarray, sample_rate: int) -> str | None:
        """Why ``wav`` holds no usable speech, or None when it may."""
        seconds = len(wav) / sample_rate
        if seconds < self.min_seconds:
            return f"{seconds:.3f} s long, shorter than the {self.min_seconds} s needed"
        peak = float(np.abs(wav).max())
        if peak <= self.silence:
            return f"digital silence (peak {peak:.2g})"
        frame, hop = int(0.025 * sample_rate), int(0.010 * sample_rate)
        count = 1 + max(0, (len(wav) - frame) // hop)
        frames = np.lib.stride_tricks.sliding_window_view(wav, frame)[::hop][:count]
        energy = 10 * np.log10(np.mean(np.square(frames, dtype=np.float64), axis=1) + 1e-12)
        spread = float(np.percentile(energy, 95) - np.percentile(energy, 10))
        if spread < self.min_spread_db:
            return (
                f"its energy varies by {spread:.1f} dB, a steady noise or tone (speech varies "
                f"by more than {self.min_spread_db} dB: speech_gate.min_spread_db)"
            )
        return None


def speech_gate(settings: Mapping | None) -> SpeechGate | None:
    """The gate a tool's ``speech_gate`` settings describe (None: ``speech_gate=null``, no gate)."""
    return None if settings is None else SpeechGate(**settings)
