"""The batched fbank against torchaudio's Kaldi-compatible fbank, one utterance at a time."""

import pytest
import torch
from torchaudio.compliance.kaldi import fbank

from speakerid.features import KaldiFbank


def _reference(wav: torch.Tensor, num_mels: int, window: str = "povey") -> torch.Tensor:
    return fbank(
        wav.unsqueeze(0) * 32768,
        num_mel_bins=num_mels,
        sample_frequency=16000,
        dither=0.0,
        window_type=window,
    )


@pytest.mark.parametrize(("num_mels", "window"), [(40, "povey"), (80, "povey"), (80, "hamming")])
def test_matches_kaldi_per_utterance_in_a_padded_batch(num_mels: int, window: str) -> None:
    torch.manual_seed(0)
    lengths = torch.tensor([16000, 9000, 4321])
    wav = torch.zeros(3, 16000)
    for i, n in enumerate(lengths):
        wav[i, :n] = torch.randn(n) * 0.1
    feats, frames = KaldiFbank(num_mels=num_mels, mean_norm=False, window=window)(wav, lengths)
    for i, n in enumerate(lengths):
        ref = _reference(wav[i, :n], num_mels, window)
        assert frames[i] == ref.shape[0]
        torch.testing.assert_close(feats[i, : frames[i]], ref, atol=2e-3, rtol=1e-4)
        assert feats[i, frames[i] :].abs().sum() == 0  # padding stays zero


def test_mean_norm_uses_real_frames_only() -> None:
    torch.manual_seed(1)
    wav = torch.randn(2, 8000) * 0.1
    lengths = torch.tensor([8000, 5000])
    feats, frames = KaldiFbank(mean_norm=True)(wav, lengths)
    ref = _reference(wav[1, :5000], 80)
    torch.testing.assert_close(feats[1, : frames[1]], ref - ref.mean(dim=0), atol=2e-3, rtol=1e-4)
    torch.testing.assert_close(
        feats[1, : frames[1]].mean(dim=0), torch.zeros(80), atol=1e-4, rtol=0
    )


def test_shorter_than_one_window_gives_no_frames() -> None:
    feats, frames = KaldiFbank()(torch.randn(1, 200), torch.tensor([200]))
    assert frames.tolist() == [0]
    assert torch.isfinite(feats).all()


def test_dither_only_in_training() -> None:
    front_end = KaldiFbank(dither=1.0)
    wav, lengths = torch.randn(1, 4000) * 0.1, torch.tensor([4000])
    front_end.eval()
    torch.testing.assert_close(front_end(wav, lengths)[0], front_end(wav, lengths)[0])
    front_end.train()
    assert not torch.equal(front_end(wav, lengths)[0], front_end(wav, lengths)[0])


def test_speechbrain_fbank_is_speechbrains_with_sentence_mean_norm() -> None:
    """SpeechbrainFbank against speechbrain's own Fbank + InputNormalization, one at a time."""
    from speechbrain.lobes.features import Fbank
    from speechbrain.processing.features import InputNormalization

    from speakerid.features import SpeechbrainFbank

    torch.manual_seed(0)
    lengths = torch.tensor([16000, 11200])
    wav = torch.zeros(2, 16000)
    for i, n in enumerate(lengths):
        wav[i, :n] = torch.randn(n) * 0.1
    feats, frames = SpeechbrainFbank()(wav, lengths)
    reference, norm = Fbank(n_mels=80), InputNormalization(norm_type="sentence", std_norm=False)
    for i, n in enumerate(lengths):
        ref = norm(reference(wav[i : i + 1, :n]), torch.ones(1))[0]
        assert frames[i] == ref.shape[0]
        torch.testing.assert_close(feats[i, : frames[i]], ref, atol=1e-4, rtol=1e-4)
