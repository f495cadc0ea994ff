"""Waveform augmentations (MUSAN noise and babble, RIR reverberation, speed) and feature-side
ones (SpecAugment, noise on mel): what they change, and that they are seeded."""

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from speakerid.data.augment import AdditiveNoise, Compose, Reverb, SpeedPerturb
from speakerid.features import MelNoise, SpecAugment


def _snr(clean: np.ndarray, noisy: np.ndarray) -> float:
    return 10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2))


def test_musan_noise_lands_in_its_snr_range_and_babble_mixes_speech(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for category in ("noise", "music", "speech"):
        for i in range(3):
            path = tmp_path / "musan" / category / "src" / f"{category}{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), 0.05 * rng.standard_normal(8000), 16000)
    clean = (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    for category, (low, high) in {"noise": (0, 15), "speech": (13, 20)}.items():
        augment = AdditiveNoise(
            str(tmp_path / "musan"),
            {category: [low, high]},
            probability=1.0,
            cache_dir=str(tmp_path / "cache"),
        )
        for seed in range(5):
            noisy = augment(clean, np.random.default_rng(seed))
            assert low - 0.5 <= _snr(clean, noisy) <= high + 0.5
    a = augment(clean, np.random.default_rng(3))
    assert np.array_equal(a, augment(clean, np.random.default_rng(3)))  # seeded
    assert np.array_equal(AdditiveNoise(probability=0.0)(clean, rng), clean)


def test_reverb_from_rirs_keeps_length_and_alignment(tmp_path: Path) -> None:
    rir = np.zeros(800)
    rir[100], rir[400] = 1.0, 0.5  # direct path at 100 samples, one echo
    path = (
        tmp_path / "RIRS_NOISES" / "simulated_rirs" / "smallroom" / "Room001" / "Room001-00001.wav"
    )
    path.parent.mkdir(parents=True)
    sf.write(str(path), rir, 16000)
    clean = np.zeros(2000, np.float32)
    clean[500] = 0.5
    out = Reverb(
        str(tmp_path / "RIRS_NOISES"),
        ["simulated_rir"],
        probability=1.0,
        cache_dir=str(tmp_path / "cache"),
    )(clean, np.random.default_rng(0))
    assert out.shape == clean.shape
    assert np.argmax(np.abs(out)) == 500  # aligned on the direct path
    assert out[800] > 0  # the echo, 300 samples later
    simulated = Reverb(probability=1.0)(clean, np.random.default_rng(0))
    assert simulated.shape == clean.shape and np.count_nonzero(simulated) > 100


def test_speed_perturbation_changes_the_pitch_and_keeps_the_length() -> None:
    t = np.arange(16000) / 16000
    tone = np.sin(2 * np.pi * 400 * t).astype(np.float32)
    faster = SpeedPerturb(factors=[1.1])(tone, np.random.default_rng(0))
    assert faster.shape == tone.shape
    peak = np.argmax(np.abs(np.fft.rfft(faster))) * 16000 / len(faster)
    assert abs(peak - 440) < 5
    chain = Compose([SpeedPerturb([0.9]), AdditiveNoise(probability=1.0)])
    assert chain(tone, np.random.default_rng(1)).shape == tone.shape


def test_feature_augmentations_act_in_training_only_and_spare_padding() -> None:
    feats, frames = torch.randn(3, 60, 40), torch.tensor([60, 40, 20])
    feats[1, 40:], feats[2, 20:] = 0, 0
    for augment in (SpecAugment(freq_width=10, time_width=10), MelNoise(0.5)):
        augment.eval()
        assert torch.equal(augment(feats, frames), feats)
        augment.train()
        torch.manual_seed(0)
        out = augment(feats, frames)
        assert not torch.equal(out, feats)
        assert (out[1, 40:] == 0).all() and (out[2, 20:] == 0).all()
    torch.manual_seed(1)
    masked = SpecAugment(freq_masks=1, freq_width=20, time_masks=0).train()(feats, frames)
    bands = 0
    for row, length in enumerate(frames.tolist()):  # a masked bin holds the utterance's mean
        mean = feats[row].mean()
        bands += int((masked[row, :length] - mean).abs().amax(0).lt(1e-5).sum())
    assert bands > 0
