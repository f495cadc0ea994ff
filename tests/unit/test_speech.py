"""The speech gate: silence, steady noise and tones, and too-short clips are refused; speech of
the built-in corpus's noisiest kind passes."""

import logging

import numpy as np
import pytest
import torch

from speakerid.data.speech import SpeechGate, SpeechTally

RATE = 16000
T = np.arange(2 * RATE) / RATE


@pytest.mark.parametrize(
    ("wav", "expected"),
    [
        (np.zeros(RATE), "digital silence"),
        (1e-5 * np.ones(RATE), "digital silence"),
        (0.1 * np.random.default_rng(0).standard_normal(2 * RATE), "steady noise or tone"),
        (0.3 * np.sin(2 * np.pi * 50 * T), "steady noise or tone"),
        (0.3 * np.sin(2 * np.pi * 1000 * T), "steady noise or tone"),
        (np.ones(RATE // 100), "shorter than the 0.1 s"),
    ],
)
def test_recordings_without_speech_are_named(wav: np.ndarray, expected: str) -> None:
    assert expected in SpeechGate().problem(wav.astype(np.float32), RATE)


def test_syllable_like_energy_in_noise_passes() -> None:
    """Bursts of a voiced tone 4 times a second over noise 10 dB below them: speech-like."""
    rng = np.random.default_rng(1)
    envelope = (np.sin(2 * np.pi * 4 * T) > 0).astype(float)
    voiced = 0.3 * envelope * np.sin(2 * np.pi * 150 * T)
    noisy = voiced + 0.3 / np.sqrt(10) * rng.standard_normal(len(T)) * 0.5
    assert SpeechGate().problem(noisy.astype(np.float32), RATE) is None


def test_the_tally_names_utterances_no_crop_of_which_holds_speech(caplog) -> None:
    t = np.arange(RATE) / RATE
    bursts = np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 4 * t) > 0)  # syllable-like
    speech, silence = bursts.astype(np.float32), np.zeros(RATE, np.float32)
    tally = SpeechTally(SpeechGate(), RATE, crops=2)
    # utterance 0: a silent crop, then a spoken one (a pause: fine); 1: both crops silent
    tally.add(
        torch.from_numpy(np.stack([silence, speech, silence, silence])),
        torch.full((4,), RATE),
        torch.arange(4),
    )
    # utterance 2: spoken, then a crop too short to judge
    last = torch.from_numpy(np.stack([speech, silence]))
    tally.add(last, torch.tensor([RATE, 800]), torch.tensor([4, 5]))
    assert list(tally.without_speech()) == [1]
    with caplog.at_level("WARNING"):
        assert tally.warn(logging.getLogger("test"), ["a", "b", "c"]) == 1
    assert "1 utterance(s) hold no speech" in caplog.text and "b: digital silence" in caplog.text
