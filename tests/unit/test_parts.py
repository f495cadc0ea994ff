"""The five systems' backbones, front ends, VAD and N x M sampler: sizes, masking, invariants."""

import functools
from collections import Counter

import numpy as np
import pytest
import torch

from speakerid.backbones import (
    AudioEncoder,
    AudioEncoderRaw,
    CamPlusPlus,
    ResCnn,
    ResNet18,
    ResNet34,
    XVector,
)
from speakerid.data.samplers import SpeakerBatchSampler
from speakerid.features import EnergyVad, KaldiFbank, LogMel, SpectrogramImage, SplVad, VadFrontEnd


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_parameter_counts_match_the_originals() -> None:
    assert abs(_count(AudioEncoder()) - 2.67e6) / 2.67e6 < 0.01  # GE2E project: ~2.67 M
    assert abs(_count(ResNet18()) - 11.18e6) / 11.18e6 < 0.01  # torchvision's, without fc
    assert abs(_count(ResNet34()) - 6.63e6) / 6.63e6 < 0.02  # WeSpeaker ResNet34: ~6.6 M
    assert abs(_count(ResCnn()) - 24e6) / 24e6 < 0.02  # Deep Speaker: ~24 M
    assert abs(_count(CamPlusPlus()) - 7.18e6) / 7.18e6 < 0.005  # CAM++ (WeSpeaker: 7.18 M)


@pytest.mark.parametrize(
    "build",
    [
        functools.partial(AudioEncoder, num_mels=16, depth=8, embed_dim=12),
        functools.partial(AudioEncoderRaw, num_mels=16, depth=4),
        functools.partial(ResCnn, num_mels=16, channels=(4, 4, 8, 8), embed_dim=12, blocks=1),
        functools.partial(ResNet34, num_mels=16, width=4, embed_dim=12),
        functools.partial(XVector, num_mels=16, channels=8, stats_channels=16, embed_dim=12),
        functools.partial(
            CamPlusPlus, num_mels=16, embed_dim=12, init_channels=16, growth=8, layers=(2, 2, 2)
        ),
    ],
    ids=lambda b: b.func.__name__,
)
def test_padding_does_not_change_an_embedding(build) -> None:
    """An utterance alone and padded in a batch beside a longer one embed alike."""
    torch.manual_seed(
        0
    )  # weights made here, not at collection (the global RNG's state there varies)
    net = build().eval()
    torch.manual_seed(0)
    short = torch.randn(1, 64, 16)
    alone = net(short, torch.tensor([64]))
    padded = torch.cat([short, torch.zeros(1, 64, 16)], dim=1)
    batch = torch.cat([padded, torch.randn(1, 128, 16)])
    together = net(batch, torch.tensor([64, 128]))[:1]
    if not isinstance(net, AudioEncoder):
        # convolutions see the zero padding near the end; pooling masks it (close, not equal)
        assert torch.nn.functional.cosine_similarity(alone, together).item() > 0.9
    else:
        torch.testing.assert_close(alone, together, atol=1e-5, rtol=1e-4)


def test_resnet18_loads_a_torchvision_state_dict(tmp_path) -> None:
    net = ResNet18(width=8)
    state = {}
    for key, value in net.state_dict().items():  # rename into torchvision's layout
        key = key.replace("stem.0.", "conv1.").replace("stem.1.", "bn1.")
        for i in range(4):
            key = key.replace(f"layers.{i}.", f"layer{i + 1}.")
        state[key.replace("shortcut.", "downsample.")] = torch.randn_like(value.float()).to(
            value.dtype
        )
    state["fc.weight"] = torch.zeros(10, 64)
    torch.save(state, tmp_path / "resnet18.pth")
    loaded = ResNet18(width=8, weights=str(tmp_path / "resnet18.pth"))
    torch.testing.assert_close(loaded.stem[0].weight, state["conv1.weight"])


def test_front_ends_mask_padding_and_the_image_is_square() -> None:
    wav, lengths = torch.randn(2, 16000), torch.tensor([16000, 8000])
    feats, frames = LogMel()(wav, lengths)
    assert (feats[1, frames[1] :] == 0).all() and (feats[1, : frames[1]] != 0).any()
    image, frames = SpectrogramImage(num_mels=32)(wav, lengths)
    assert image.shape == (2, 32, 32) and frames.tolist() == [32, 32]
    assert image.abs().amax().item() <= 1.0 + 1e-6  # max-abs per frame, then resized
    fbank = KaldiFbank(num_mels=64, mean_norm=False, frame_norm=True)
    feats, frames = fbank(wav, lengths)
    real = feats[0, : frames[0]]
    torch.testing.assert_close(real.mean(-1), torch.zeros(len(real)), atol=1e-4, rtol=0)


def test_vads_trim_silence() -> None:
    silence, speech = torch.zeros(1, 1600), 0.5 * torch.randn(1, 3200)
    wav = torch.cat([silence, speech, silence], dim=1)
    _, kept = EnergyVad(quantile=0.5, ratio=0.01)(wav, torch.tensor([6400]))
    assert 3000 <= kept.item() <= 3200
    quiet = torch.cat([torch.full((1, 1600), 1e-5), speech], dim=1)
    voiced, kept = SplVad(chunk_ms=50, threshold_db=40)(quiet, torch.tensor([4800]))
    assert kept.item() == 3200 and torch.equal(voiced[0, :3200], speech[0])
    front = VadFrontEnd(EnergyVad(quantile=0.5, ratio=0.01), KaldiFbank(num_mels=40), num_mels=40)
    feats, frames = front(wav, torch.tensor([6400]))
    assert feats.shape[2] == 40 and frames.item() < KaldiFbank().num_frames(torch.tensor(6400))


def test_speaker_batches_are_n_by_m_without_repeats_and_resume() -> None:
    labels = np.repeat(np.arange(12), [3, 5, 8, 2, 6, 6, 7, 4, 9, 10, 4, 4])
    sampler = SpeakerBatchSampler(labels, speakers=3, utterances=2, seed=7)
    items = [i for i, _ in sampler]
    assert len(items) == len(sampler) and len(items) % 6 == 0
    for batch in np.array(items).reshape(-1, 6):
        speakers = labels[batch]
        assert Counter(speakers.tolist()) == dict.fromkeys(set(speakers.tolist()), 2)
        assert len(set(speakers.tolist())) == 3  # no speaker twice
    assert max(Counter(items).values()) == 1  # max_uses=1
    threes = [i for i, _ in SpeakerBatchSampler(labels, speakers=3, utterances=3, seed=7)]
    assert 3 not in labels[threes]  # speaker 3 has 2 files, fewer than M = 3
    resumed = SpeakerBatchSampler(labels, speakers=3, utterances=2, seed=7)
    resumed.next_epoch, resumed.skip = 0, 12
    assert [i for i, _ in resumed] == items[12:]
    again = [i for i, _ in sampler]  # the next epoch: another arrangement
    assert again != items and sorted(again) != []
    ranks = [SpeakerBatchSampler(labels, 3, 2, seed=7) for _ in range(2)]
    for rank, s in enumerate(ranks):
        s.num_replicas, s.rank = 2, rank
        s.num_samples = len(sampler) // 12 * 6
    first, second = ([i for i, _ in s] for s in ranks)
    assert not set(first) & set(second) and len(first) == len(second)
    with pytest.raises(ValueError, match="need 20 speakers"):
        SpeakerBatchSampler(labels, speakers=20, utterances=2, seed=0)


def test_vad_front_end_keeps_a_voiced_span_in_training_only() -> None:
    silence, speech = torch.zeros(1, 3200), 0.5 * torch.randn(1, 8000)
    wav = torch.cat([silence, speech, silence], dim=1)
    front = VadFrontEnd(EnergyVad(0.5, 0.01), KaldiFbank(num_mels=24), train_crop_samples=4000)
    front.train()
    _, frames = front(wav, torch.tensor([wav.shape[1]]))
    assert frames.item() == KaldiFbank().num_frames(torch.tensor(4000)).item()
    front.eval()
    _, frames = front(wav, torch.tensor([wav.shape[1]]))
    assert frames.item() > KaldiFbank().num_frames(torch.tensor(7000)).item()


def test_speed_class_logits_fold_back_to_speakers() -> None:
    from speakerid.evaluate import _classifier
    from speakerid.losses import Softmax

    head = Softmax(4, 6)  # 3 speakers x 2 copies (original, one speed)
    system = torch.nn.Module()
    system.loss = head
    x = torch.randn(5, 4)
    folded = _classifier(system, copies=2)(x)
    full = head.classify(x)
    assert folded.shape == (5, 3)
    torch.testing.assert_close(folded, torch.maximum(full[:, :3], full[:, 3:]))
