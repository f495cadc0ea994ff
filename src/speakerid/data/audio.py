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
) -> np.ndarray:
    """Read ``num_samples`` samples (all when -1) from ``start`` as float32 mono.

    Only the requested span is decoded, so random crops of long files stay cheap.

    Raises:
        AudioError: the file is missing, unreadable, not ``sample_rate``, multi-channel, or
            holds fewer samples than asked for.
    """
    path = Path(path)
    try:
        with sf.SoundFile(str(path)) as f:
            if f.samplerate != sample_rate:
                raise AudioError(
                    f"{path}: sample rate {f.samplerate} Hz, expected {sample_rate} Hz"
                )
            if f.channels != 1:
                raise AudioError(f"{path}: {f.channels} channels, expected mono")
            if start:
                f.seek(start)
            wav = f.read(frames=num_samples, dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        if not path.is_file():
            raise AudioError(f"{path}: file not found") from None
        raise AudioError(f"{path}: not a readable audio file ({err})") from None
    if wav.size == 0 or (num_samples > 0 and wav.shape[0] < num_samples):
        raise AudioError(f"{path}: {wav.shape[0]} samples read, expected {max(num_samples, 1)}")
    return wav
