"""The speech gate: silence, steady noise and tones, noise switched or modulated like syllables,
and too-short clips are refused; a voice (also in noise, also with a DC offset) passes."""

import logging

import numpy as np
import pytest
import torch
from scipy import signal

from speakerid.data.speech import SpeechGate, SpeechTally, speech_gate
from speakerid.errors import ConfigError

RATE = 16000
T = np.arange(2 * RATE) / RATE


def voice(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A synthetic talker: a glottal pulse train whose pitch glides (110-150 Hz) through two
    formants, in syllables 4 times a second, over white noise 15 dB below it."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    pitch = 130 + 20 * np.sin(2 * np.pi * 0.7 * t)
    pulses = signal.sawtooth(2 * np.pi * np.cumsum(pitch) / RATE) ** 3
    for centre, width in ((700, 90), (1200, 110)):  # an /a/-like vowel
        pulses = signal.lfilter(*signal.iirpeak(centre, centre / width, fs=RATE), pulses)
    syllables = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 0.5
    x = pulses * syllables
    x = 0.3 * x / np.abs(x).max()
    return x + np.std(x) * 10 ** (-15 / 20) * rng.standard_normal(len(t))


def noise(kind: str, exponent: float, seed: int = 0) -> np.ndarray:
    """White (0), pink (1) or brown (2) noise, switched on and off at random like syllables
    (``gated``) or amplitude-modulated at 4 Hz (``am``)."""
    rng = np.random.default_rng(seed)
    freqs = np.fft.rfftfreq(len(T))
    freqs[0] = freqs[1]
    spectrum = (rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs))) / freqs ** (
        exponent / 2
    )
    x = np.fft.irfft(spectrum, len(T))
    x /= x.std()
    if kind == "am":
        return 0.2 * x * (1 + np.sin(2 * np.pi * 4 * T)) / 2
    envelope, start = np.zeros(len(T)), 0
    while start < len(T):  # bursts of 80-300 ms, gaps of 30-200 ms
        burst = int(rng.uniform(0.08, 0.3) * RATE)
        envelope[start : start + burst] = rng.uniform(0.3, 1.0)
        start += burst + int(rng.uniform(0.03, 0.2) * RATE)
    return 0.2 * x * signal.lfilter([0.01], [1, -0.99], envelope) * 10


@pytest.mark.parametrize(
    ("wav", "expected"),
    [
        (np.zeros(RATE), "digital silence"),
        (1e-5 * np.ones(RATE), "digital silence"),
        (0.5 * np.ones(RATE), "digital silence"),  # a DC offset alone
        (0.1 * np.random.default_rng(0).standard_normal(2 * RATE), "steady noise or tone"),
        (0.3 * np.sin(2 * np.pi * 50 * T), "steady noise or tone"),
        (0.3 * np.sin(2 * np.pi * 1000 * T), "steady noise or tone"),
        (np.ones(RATE // 100), "shorter than the 0.1 s"),
    ],
)
def test_recordings_without_speech_are_named(wav: np.ndarray, expected: str) -> None:
    assert expected in SpeechGate().problem(wav.astype(np.float32), RATE)


@pytest.mark.parametrize("kind", ["gated", "am"])
@pytest.mark.parametrize("exponent", [0, 1, 2], ids=["white", "pink", "brown"])
def test_switched_or_modulated_noise_is_refused(kind: str, exponent: float) -> None:
    """Its energy swings like speech's (the energy test passes it); it has no voice's pitch."""
    wav = noise(kind, exponent).astype(np.float32)
    assert SpeechGate(min_voiced=0).problem(wav, RATE) is None  # energy alone is fooled
    problem = SpeechGate().problem(wav, RATE)
    assert problem is not None and "carry a voice's pitch" in problem


@pytest.mark.parametrize("offset", [0.0, 0.5, -0.3])
def test_a_voice_in_noise_passes_with_or_without_a_dc_offset(offset: float) -> None:
    assert SpeechGate().problem((voice() + offset).astype(np.float32), RATE) is None


def test_settings_out_of_range_are_refused_in_one_line() -> None:
    for settings, message in [
        ({"silence": 2}, r"speech_gate\.silence=2: must lie in \[0, 1\)"),
        ({"min_seconds": "abc"}, r"speech_gate\.min_seconds='abc': a number is needed"),
        ({"min_spread_db": float("nan")}, r"speech_gate\.min_spread_db=nan: must lie in"),
        ({"min_voiced": 1.5}, r"speech_gate\.min_voiced=1\.5: must lie in \[0, 1\]"),
        ({"min_second": 0.2}, r"speech_gate\.min_second: unknown setting"),
    ]:
        with pytest.raises(ConfigError, match=message):
            speech_gate(settings)
    assert speech_gate(None) is None and speech_gate({"silence": 0}) == SpeechGate(silence=0)


def test_the_tally_names_utterances_no_crop_of_which_holds_speech(caplog) -> None:
    speech = voice(1.0).astype(np.float32)
    silence = np.zeros(RATE, np.float32)
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
