"""Voice activity detection of long recordings, block by block: a speech probability for each
32 ms frame.

:class:`SileroVad` is Silero VAD v6 (Silero Team, 2024, github.com/snakers4/silero-vad), a small
recurrent network trained on speech in many languages and noises; its weights ship inside the
``silero-vad`` wheel (``silero_vad/data/silero_vad.jit``), so nothing is downloaded.
:class:`EnergyActivity` is the fallback without it: frames louder than a floor set from the
recording's own quiet frames. Both keep state between the blocks they are fed (the samples of an
unfinished frame; Silero's recurrent state is restarted each block, whose first 0.1 s it takes to
settle).
"""

import logging

import numpy as np
import torch
import torchaudio

from speakerid.errors import ConfigError

log = logging.getLogger(__name__)
FRAME_SECONDS = 0.032  # Silero's frame: 512 samples at 16 kHz, 256 at 8 kHz


class SileroVad:
    """Speech probabilities in [0, 1], one per 32 ms frame, of audio fed in blocks.

    Args:
        sample_rate: the rate of the blocks (resampled to 16 kHz unless 8 or 16 kHz).

    Example:
        >>> vad = SileroVad(16000)
        >>> vad.feed(np.zeros(16000, np.float32)).shape  # 1 s: 31 whole frames, 0.008 s kept
        (31,)
    """

    def __init__(self, sample_rate: int) -> None:
        from silero_vad import load_silero_vad  # the jit model file inside the installed wheel

        self.model = load_silero_vad(onnx=False)
        self.rate_in = sample_rate
        self.rate = sample_rate if sample_rate in (8000, 16000) else 16000
        self.frame = round(FRAME_SECONDS * self.rate)
        self.pending = np.zeros(0, np.float32)

    @torch.inference_mode()
    def feed(self, block: np.ndarray) -> np.ndarray:
        """(frames,) probabilities of the whole frames completed by ``block`` (mono, float32)."""
        if self.rate != self.rate_in:
            block = torchaudio.functional.resample(
                torch.from_numpy(block), self.rate_in, self.rate
            ).numpy()
        audio = np.concatenate([self.pending, block])
        whole = len(audio) // self.frame * self.frame
        self.pending = audio[whole:]
        if whole == 0:
            return np.zeros(0, np.float32)
        self.model.reset_states()
        probs = self.model.audio_forward(torch.from_numpy(audio[:whole]), self.rate)
        return probs[0].numpy().astype(np.float32)


class EnergyActivity:
    """The fallback: a frame is speech (probability 1) when its energy is within
    ``range_db`` of the loudest frames seen so far and ``above_db`` over the quiet ones.

    Example:
        >>> vad = EnergyActivity(16000)
        >>> loud = np.sin(np.arange(8000) / 3).astype(np.float32)
        >>> vad.feed(np.concatenate([np.zeros(8000, np.float32), loud])).round().tolist()[-3:]
        [1.0, 1.0, 1.0]
    """

    def __init__(self, sample_rate: int, range_db: float = 40.0, above_db: float = 12.0) -> None:
        self.frame = round(FRAME_SECONDS * sample_rate)
        self.range_db, self.above_db = range_db, above_db
        self.pending = np.zeros(0, np.float32)
        self.loudest = -np.inf
        self.quiet = np.inf

    def feed(self, block: np.ndarray) -> np.ndarray:
        audio = np.concatenate([self.pending, block])
        whole = len(audio) // self.frame * self.frame
        self.pending = audio[whole:]
        frames = audio[:whole].reshape(-1, self.frame)
        energy = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-10)
        if len(energy):
            self.loudest = max(self.loudest, float(np.percentile(energy, 95)))
            self.quiet = min(self.quiet, float(np.percentile(energy, 10)))
        floor = max(self.loudest - self.range_db, self.quiet + self.above_db)
        return (energy > floor).astype(np.float32)


def activity_detector(name: str, sample_rate: int) -> SileroVad | EnergyActivity:
    """``silero`` (the default; the energy detector, with a warning, if the package is absent)
    or ``energy``."""
    if name == "energy":
        return EnergyActivity(sample_rate)
    if name != "silero":
        raise ConfigError(f"vad={name!r}: silero or energy")
    try:
        return SileroVad(sample_rate)
    except ImportError:
        log.warning("silero-vad is not installed: the energy detector decides what is speech")
        return EnergyActivity(sample_rate)


def clean_mask(speech: np.ndarray, min_speech: int, min_silence: int) -> np.ndarray:
    """``speech`` (frames,) with pauses shorter than ``min_silence`` frames filled, then speech
    runs shorter than ``min_speech`` frames removed.

    Example:
        >>> clean_mask(np.array([1, 1, 0, 1, 1, 0, 0, 0, 1, 0], bool), 2, 2).astype(int).tolist()
        [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    """
    out = speech.copy()
    for value, shortest in ((False, min_silence), (True, min_speech)):
        starts, ends = runs(out == value)
        for start, end in zip(starts, ends, strict=True):
            inner = start > 0 and end < len(out) if not value else True
            if end - start < shortest and inner:
                out[start:end] = not value
    return out


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the runs of True in ``mask``.

    Example:
        >>> [x.tolist() for x in runs(np.array([0, 1, 1, 0, 1], bool))]
        [[1, 4], [3, 5]]
    """
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.diff(padded)
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
