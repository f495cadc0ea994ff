"""Does a recording contain speech at all? A cheap gate before a model scores it.

A model embeds anything: two files of digital silence score 1.0 against each other, white noise
against mains hum 0.7, two recordings of gated, amplitude-modulated noise 0.997. The gate asks for
two kinds of evidence, after removing any DC offset:

- **Energy that moves.** Syllables, pauses and pitch make speech's short-time energy swing by
  tens of dB; silence, a hum, a tone or steady noise barely move. Frame energies (25 ms frames,
  10 ms hop) must span ``min_spread_db`` between their 10th and 95th percentiles.
- **A voice's pitch.** Energy alone is fooled by noise switched on and off. Voiced speech is
  periodic at 60-400 Hz and its pitch glides smoothly from one frame to the next; noise of any
  colour and any modulation is not. A frame is periodic when YIN's cumulative mean normalized
  difference (de Cheveigné & Kawahara, "YIN, a fundamental frequency estimator for speech and
  music", JASA 2002) dips below ``1 - PERIODICITY`` inside that lag range, and voiced when it
  lies in a run of ``STEADY_FRAMES`` periodic frames whose periods differ by under
  ``PITCH_STEP`` from one to the next. YIN's normalization makes the test indifferent to the
  noise's colour (brown noise correlates strongly at short lags, but has no dip). At least
  ``min_voiced`` of the sounding frames (within ``SOUNDING_DB`` of the loud ones) must be
  voiced. On the built-in corpus (4000 utterances) every utterance has 11 % or more (median
  69 %); white, pink or brown noise, gated like syllables or amplitude-modulated, at most 2.1 %.
  A tone or buzz of one steady pitch switched on and off is periodic like a voice: it passes.
"""

from collections.abc import Mapping
from dataclasses import dataclass, fields
from math import isfinite

import numpy as np
from scipy import fft

from speakerid.errors import AudioError, ConfigError

FRAME_SECONDS, HOP_SECONDS = 0.025, 0.010
PITCH_HZ = (60.0, 400.0)  # adult speech's fundamental frequency range
PERIODICITY = 0.5  # 1 - YIN's normalized difference at the period: 1 for a perfect period
PITCH_STEP = 0.06  # a voice's pitch moves less than ~1 semitone in 10 ms
STEADY_FRAMES = 3  # a voiced stretch lasts 30 ms or more
SOUNDING_DB = 30.0  # frames this far below the 95th-percentile frame energy are pauses
BLOCK_FRAMES = 512  # frames analysed at once: bounded memory, and speech stops early
_BOUNDS = {  # setting: (lowest, highest, whether the highest itself is allowed)
    "min_seconds": (0.0, float("inf"), False),
    "min_spread_db": (0.0, float("inf"), False),
    "silence": (0.0, 1.0, False),  # a peak of 1 is full scale: nothing would pass
    "min_voiced": (0.0, 1.0, True),
}


class NoSpeechError(AudioError):
    """A recording the gate refused: ``"<file>: no speech — <why>"`` (a tool that reads many
    files may report it on that file's row and go on)."""

    SEPARATOR = "no speech — "

    def reason(self) -> str:
        """The gate's why, without the file."""
        return str(self).rsplit(self.SEPARATOR, 1)[-1]


@dataclass(frozen=True)
class SpeechGate:
    """Thresholds of the gate (``speech_gate`` in ``conf/verify.yaml``, ``conf/identify.yaml``).

    Args:
        min_seconds: shorter files are refused (the front ends need a few frames).
        min_spread_db: frame-energy spread (95th - 10th percentile) below which a file holds no
            speech. The built-in corpus's noisiest files (10 dB SNR) spread by 8.6 dB or more;
            white noise by under 1 dB, a 50 Hz hum by 0.
        silence: peak amplitude (after removing DC) at or below which a file is digital silence.
        min_voiced: fraction of the sounding frames that must be voiced (periodic, with a pitch
            that moves smoothly); 0 turns the check off.

    Example:
        >>> gate = SpeechGate()
        >>> gate.problem(np.zeros(16000, dtype=np.float32), 16000)
        'digital silence (peak 0)'
    """

    min_seconds: float = 0.1
    min_spread_db: float = 4.0
    silence: float = 1e-4
    min_voiced: float = 0.05

    def __post_init__(self) -> None:
        for name, (low, high, closed) in _BOUNDS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"speech_gate.{name}={value!r}: a number is needed")
            below_high = value <= high if closed else value < high
            if not (isfinite(value) and low <= value and below_high):
                end = "]" if closed else ")"
                raise ConfigError(
                    f"speech_gate.{name}={value}: must lie in [{low:g}, {high:g}{end}"
                )

    def problem(self, wav: np.ndarray, sample_rate: int) -> str | None:
        """Why ``wav`` (S,) holds no usable speech, or None when it may."""
        seconds = len(wav) / sample_rate
        if seconds < self.min_seconds:
            return f"{seconds:.3f} s long, shorter than the {self.min_seconds} s needed"
        wav = np.asarray(wav, dtype=np.float64)
        wav = wav - wav.mean()  # a DC offset is no sound: it must not hide the speech's swings
        peak = float(np.abs(wav).max()) if len(wav) else 0.0
        if peak <= self.silence:
            return f"digital silence (peak {peak:.2g})"
        energy = frame_energy_db(wav, sample_rate)
        spread = float(np.percentile(energy, 95) - np.percentile(energy, 10))
        if spread < self.min_spread_db:
            return (
                f"its energy varies by {spread:.1f} dB, a steady noise or tone (speech varies "
                f"by more than {self.min_spread_db} dB: speech_gate.min_spread_db)"
            )
        if self.min_voiced <= 0:
            return None
        voiced = voiced_fraction(wav, sample_rate, energy, enough=self.min_voiced)
        if voiced < self.min_voiced:
            return (
                f"{voiced:.1%} of its sounding frames carry a voice's pitch, a noise "
                f"(switched or modulated) rather than speech (speech has over {self.min_voiced:.0%}"
                ": speech_gate.min_voiced)"
            )
        return None


def frame_energy_db(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """(N,) energies in dB of the 25 ms frames (10 ms hop) of ``wav`` (S,) about each frame's mean
    (an offset, even a drifting one, is no sound), a block of frames at a time: no (N, frame)
    copy of an hour-long file."""
    frame, hop = int(FRAME_SECONDS * sample_rate), int(HOP_SECONDS * sample_rate)
    count = 1 + max(0, (len(wav) - frame) // hop)
    padded = np.pad(wav, (0, max(0, frame - len(wav))))
    view = np.lib.stride_tricks.sliding_window_view(padded, frame)
    energy = np.empty(count)
    for start in range(0, count, BLOCK_FRAMES):
        rows = view[start * hop : (start + BLOCK_FRAMES) * hop : hop][: count - start]
        energy[start : start + len(rows)] = np.var(rows, axis=1)
    return 10 * np.log10(energy + 1e-12)


def voiced_fraction(
    wav: np.ndarray, sample_rate: int, energy: np.ndarray, enough: float = 1.0
) -> float:
    """Fraction of the sounding frames of ``wav`` (S,) that are voiced: periodic at a pitch in
    ``PITCH_HZ``, in a run of frames whose pitch glides (:func:`_steady_pitch`).

    Args:
        wav: DC-free samples.
        sample_rate: of ``wav``.
        energy: (N,) frame energies in dB (:func:`frame_energy_db`).
        enough: stop once this fraction is reached (speech shows it in its first seconds); the
            value returned is then a lower bound.
    """
    sounding = energy > np.percentile(energy, 95) - SOUNDING_DB
    total = max(int(sounding.sum()), 1)
    lags = np.zeros(len(energy))  # 0: not periodic
    window, _, _, high = _lags(sample_rate)
    padded = np.pad(wav, (0, window + high))  # the last frames are compared with silence
    for start in range(0, len(energy), BLOCK_FRAMES):
        rows = np.flatnonzero(sounding[start : start + BLOCK_FRAMES]) + start
        if len(rows):
            periodicity, lag = _yin(padded, sample_rate, rows)
            lags[rows] = np.where(periodicity >= PERIODICITY, lag, 0)
        found = _steady_pitch(lags[: start + BLOCK_FRAMES]).sum() / total
        if found >= enough:
            break
    return float(found)


def _steady_pitch(lags: np.ndarray) -> np.ndarray:
    """(N,) whether each frame lies in a run of ``STEADY_FRAMES`` frames whose pitch periods
    (``lags``, 0: none) each differ from the next by less than ``PITCH_STEP``: a voice glides, a
    chance dip of a noise frame has no such neighbours."""
    logs = np.log(np.maximum(lags, 1))
    pair = (lags[1:] > 0) & (lags[:-1] > 0) & (np.abs(np.diff(logs)) < np.log1p(PITCH_STEP))
    span = STEADY_FRAMES - 1  # pairs in a run
    if len(pair) < span:
        return np.zeros(len(lags), dtype=bool)
    run = np.lib.stride_tricks.sliding_window_view(pair, span).all(axis=1)
    steady = np.zeros(len(lags), dtype=bool)
    for offset in range(STEADY_FRAMES):
        steady[offset : offset + len(run)] |= run
    return steady


def _lags(sample_rate: int) -> tuple[int, int, int, int]:
    """YIN's window, hop, and shortest and longest pitch period, in samples."""
    window, hop = int(FRAME_SECONDS * sample_rate), int(HOP_SECONDS * sample_rate)
    return window, hop, int(sample_rate / PITCH_HZ[1]), int(np.ceil(sample_rate / PITCH_HZ[0]))


def _yin(padded: np.ndarray, sample_rate: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """YIN's periodicity (1 - the cumulative mean normalized difference at its minimum over the
    pitch lags) and that lag (samples) of the frames ``rows``: (R,), (R,). ``padded``: the
    samples followed by a frame and a pitch period of zeros."""
    window, hop, low, high = _lags(sample_rate)
    span = window + high  # a frame and the longest lag it is compared at
    x = np.lib.stride_tricks.sliding_window_view(padded, span)[rows * hop]  # (R, span)
    ramp = np.linspace(-1.0, 1.0, span)  # a slow drift within a frame is no period: detrend
    x = x - x.mean(axis=1, keepdims=True) - np.outer(x @ ramp / (ramp @ ramp), ramp)
    # head . x shifted by tau, for tau <= high: indices stay below span, so a transform of
    # span points has no wrap-around
    size = fft.next_fast_len(span, real=True)
    head = fft.rfft(x[:, :window], size)
    cross = fft.irfft(np.conj(head) * fft.rfft(x, size), size)[:, 1 : high + 1]  # (R, lags)
    sums = np.concatenate([np.zeros((len(x), 1)), np.cumsum(np.square(x), axis=1)], axis=1)
    tau = np.arange(1, high + 1)
    # d(tau) = sum_j (x_j - x_{j+tau})^2 over the window, from energies and the cross term
    diff = sums[:, window : window + 1] + sums[:, tau + window] - sums[:, tau] - 2 * cross
    normalized = diff * tau / (np.cumsum(diff, axis=1) + 1e-30)  # YIN's step 3
    best = normalized[:, low - 1 :].argmin(axis=1)
    periodicity = 1 - normalized[np.arange(len(x)), low - 1 + best]
    # a minimum at the longest lag is no dip, only a slope (noise dominated by its lowest tones)
    return np.where(low + best < high, periodicity, 0.0), low + best


def speech_gate(settings: Mapping | None) -> SpeechGate | None:
    """The gate a tool's ``speech_gate`` settings describe (None: ``speech_gate=null``, no gate)."""
    if settings is None:
        return None
    known = {f.name for f in fields(SpeechGate)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(f"speech_gate.{unknown[0]}: unknown setting; known: {sorted(known)}")
    return SpeechGate(**settings)


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
