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


class SpeechTally:
    """Which utterances of an embedding run hold no speech, from the batches as they pass.

    An utterance counts as without speech when none of its crops passes the gate (a pause in
    one crop of a multi-crop embedding is normal). Batch rows are indexed as the embedding loaders
    index them: crop ``i`` belongs to utterance ``i // crops``.

    Args:
        gate: the thresholds.
        sample_rate: of the waveforms.
        crops: crops per utterance (1 for whole utterances).
    """

    def __init__(self, gate: SpeechGate, sample_rate: int, crops: int = 1) -> None:
        self.gate, self.sample_rate, self.crops = gate, sample_rate, max(crops, 1)
        self.speech: set[int] = set()
        self.problems: dict[int, str] = {}

    def add(self, wav, lengths, index) -> None:
        """Check each row of a (B,S) batch with its (B,) lengths and (B,) dataset indices."""
        wav, lengths, index = wav.cpu().numpy(), lengths.tolist(), index.tolist()
        for row, (length, item) in enumerate(zip(lengths, index, strict=True)):
            utterance = item // self.crops
            if utterance in self.speech:
                continue
            problem = self.gate.problem(wav[row, :length], self.sample_rate)
            if problem is None:
                self.speech.add(utterance)
                self.problems.pop(utterance, None)
            else:
                self.problems.setdefault(utterance, problem)

    def without_speech(self) -> dict[int, str]:
        """Utterance -> why, for the utterances no crop of which held speech."""
        return dict(sorted(self.problems.items()))

    def warn(self, log, names: list[str]) -> int:
        """Log one warning with the count and the first three utterances (``names[u]``)."""
        found = self.without_speech()
        if found:
            examples = "; ".join(f"{names[u]}: {why}" for u, why in list(found.items())[:3])
            log.warning(
                "%d utterance(s) hold no speech; their embeddings are noise (e.g. %s)",
                len(found),
                examples,
            )
        return len(found)


def speech_tally(settings: Mapping | None, sample_rate: int, crops: int) -> SpeechTally | None:
    """The tally an embedding tool's ``speech_gate`` settings describe (None: no check)."""
    gate = speech_gate(settings)
    return None if gate is None else SpeechTally(gate, sample_rate, crops)
