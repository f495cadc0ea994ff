"""Reading audio with soundfile, with errors that name the file."""

from pathlib import Path

import numpy as np
import soundfile as sf

from speakerid.errors import AudioError


def audio_info(path: str | Path) -> sf._SoundFileInfo:
    """Read a file's header; raise :class:`AudioError` naming the file if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(f"{path}: not a readable audio file ({err})") from None


def read_audio(
    path: str | Path,
    sample_rate: int,
    start: int = 0,
    num_samples: int = -1,
    convert: bool = False,
) -> np.ndarray:
    """Read ``num_samples`` samples (all when -1) from ``start`` as float32 mono.

    Only the requested span is decoded, so random crops of long files stay cheap. With
    ``convert``, a file at another rate is resampled and a multi-channel one averaged, and
    ``start``/``num_samples`` count samples at ``sample_rate`` (the corpus validation pass lets
    such files through only when its policy says resample / downmix).

    Raises:
        AudioError: the file is missing, unreadable, not ``sample_rate`` or multi-channel (without
            ``convert``), or holds fewer samples than asked for.
    """
    path = Path(path)
    try:
        with sf.SoundFile(str(path)) as f:
            rate = f.samplerate
            if rate != sample_rate and not convert:
                raise AudioError(f"{path}: sample rate {rate} Hz, expected {sample_rate} Hz")
            if f.channels != 1 and not convert:
                raise AudioError(f"{path}: {f.channels} channels, expected mono")
            first, frames = start, num_samples
            if rate != sample_rate:  # the span in the file's own samples, with a margin
                first = start * rate // sample_rate
                frames = -1 if num_samples < 0 else -(-num_samples * rate // sample_rate) + 16
            if first:
                f.seek(first)
            wav = f.read(frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        if not path.is_file():
            raise AudioError(f"{path}: file not found") from None
        raise AudioError(f"{path}: not a readable audio file ({err})") from None
    wav = wav.mean(axis=1) if wav.shape[1] > 1 else wav[:, 0]
    if rate != sample_rate and wav.size:
        wav = resample(wav, rate, sample_rate)
        if num_samples > 0:
            wav = wav[:num_samples]
    if wav.size == 0 or (num_samples > 0 and wav.shape[0] < num_samples):
        raise AudioError(f"{path}: {wav.shape[0]} samples read, expected {max(num_samples, 1)}")
    return np.ascontiguousarray(wav)


def resample(wav: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``wav`` from ``rate`` to ``target`` Hz (torchaudio's windowed-sinc resampler)."""
    import torch
    import torchaudio.functional as F

    return F.resample(torch.from_numpy(np.ascontiguousarray(wav)), rate, target).numpy()


def converted_length(frames: int, rate: int, target: int) -> int:
    """Samples a file of ``frames`` at ``rate`` has once resampled to ``target``."""
    return frames if rate == target else -(-frames * target // rate)
