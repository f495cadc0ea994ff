"""Audio reading: every bad file gives an AudioError naming it."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speakerid.data.audio import audio_info, read_audio
from speakerid.errors import AudioError


def _wav(path: Path, samples: int, rate: int = 16000, channels: int = 1) -> Path:
    sf.write(
        str(path), np.zeros((samples, channels), dtype=np.float32) + 0.1, rate, subtype="PCM_16"
    )
    return path


def _garbage(path: Path) -> Path:
    path.write_bytes(b"RIFF\x00\x01garbage" * 10)
    return path


def test_reads_a_span(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(str(path), np.arange(1000, dtype=np.float32) / 1000, 16000, subtype="FLOAT")
    wav = read_audio(path, 16000, start=100, num_samples=50)
    assert wav.dtype == np.float32 and wav.shape == (50,)
    assert wav[0] == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "file not found"),
        (lambda p: _garbage(p), "not a readable audio file"),
        (lambda p: _wav(p, 1000, rate=8000), "sample rate 8000 Hz, expected 16000 Hz"),
        (lambda p: _wav(p, 1000, channels=2), "2 channels, expected mono"),
        (lambda p: _wav(p, 0), "0 samples read"),
    ],
    ids=["missing", "corrupt", "wrong-rate", "stereo", "empty"],
)
def test_bad_files_are_named(tmp_path: Path, make, message: str) -> None:
    path = make(tmp_path / "bad.wav")
    with pytest.raises(AudioError, match=message) as info:
        read_audio(path, 16000)
    assert str(tmp_path / "bad.wav") in str(info.value)


def test_too_short_for_the_crop(tmp_path: Path) -> None:
    path = _wav(tmp_path / "short.wav", 100)
    with pytest.raises(AudioError, match="100 samples read, expected 500"):
        read_audio(path, 16000, 0, 500)


def test_info_of_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "x.wav").write_bytes(b"nope")
    with pytest.raises(AudioError, match=r"x\.wav: not a readable audio file"):
        audio_info(tmp_path / "x.wav")


def test_a_user_file_over_max_seconds_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    """A 2-hour file given to speakerid-verify grew past 6.7 GB and died (issue 23)."""
    import soundfile

    from speakerid.errors import AudioError, ConfigError
    from speakerid.inference import read_for_model

    path = tmp_path / "long.wav"
    soundfile.write(str(path), np.zeros(16000 * 12, dtype=np.float32), 16000)
    assert read_for_model(path, 16000, max_seconds=12.5).shape == (16000 * 12,)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(soundfile, "read", no_decoding)
    with pytest.raises(AudioError, match=r"long\.wav: 12 s long, over max_seconds=10 "):
        read_for_model(path, 16000, max_seconds=10)
    for bad in (0, -1, "abc", True):
        with pytest.raises(ConfigError, match=r"max_seconds=.*a number of seconds above 0"):
            read_for_model(path, 16000, max_seconds=bad)
