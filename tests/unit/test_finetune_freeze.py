"""``finetune.freeze``: the backbone's blocks in order, an LSTM by its stacked layers, batch-norm
statistics of the frozen part held, bad settings one line."""

import pytest
import torch
from torch import nn

from speakerid.backbones.ge2e_lstm import Ge2eLstm
from speakerid.errors import ConfigError
from speakerid.finetune import KeepFrozen, backbone_blocks, freeze, freeze_setting


class _Net(nn.Module):
    """A wrapper around a stem, a list of blocks and a projection (as the ECAPA wrappers)."""

    def __init__(self) -> None:
        super().__init__()
        inner = nn.Module()
        inner.stem = nn.Sequential(nn.Conv1d(4, 8, 3), nn.BatchNorm1d(8), nn.ReLU())
        inner.blocks = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8)])
        inner.out = nn.Linear(8, 2)
        self.model = inner


def test_blocks_look_through_a_wrapper_and_expand_lists() -> None:
    names = [name for name, _ in backbone_blocks(_Net())]
    assert names == [
        "model.stem.0",
        "model.stem.1",
        "model.blocks.0",
        "model.blocks.1",
        "model.out",
    ]


def test_the_first_blocks_freeze_and_their_norms_stay_in_eval_mode() -> None:
    net = _Net()
    norms = freeze(net, 3)  # stem conv, stem norm, first block
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    assert frozen == {
        "model.stem.0.weight",
        "model.stem.0.bias",
        "model.stem.1.weight",
        "model.stem.1.bias",
        "model.blocks.0.weight",
        "model.blocks.0.bias",
    }
    assert norms == [net.model.stem[1]]
    net.train()  # what Lightning does at each epoch
    KeepFrozen(norms).on_train_batch_start(None, None, None, 0)
    assert not net.model.stem[1].training and net.model.blocks[1].training
    running = net.model.stem[1].running_mean.clone()
    net.model.stem(torch.randn(4, 4, 10))
    torch.testing.assert_close(net.model.stem[1].running_mean, running)


def test_an_lstm_freezes_by_its_stacked_layers() -> None:
    lstm = Ge2eLstm(num_mels=8, hidden=6, layers=3, embed_dim=4)
    assert [n for n, _ in backbone_blocks(lstm)] == ["lstm.l0", "lstm.l1", "lstm.l2", "linear"]
    freeze(lstm, 2)
    frozen = sorted(n for n, p in lstm.named_parameters() if not p.requires_grad)
    assert frozen == sorted(
        f"lstm.{w}_l{k}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") for k in (0, 1)
    )


def test_the_whole_backbone_and_nothing() -> None:
    net = _Net()
    assert freeze(net, "nothing") == [] and all(p.requires_grad for p in net.parameters())
    assert freeze(net, "backbone") == [net.model.stem[1]]
    assert not any(p.requires_grad for p in net.parameters())


@pytest.mark.parametrize("bad", ["everything", 0, -1, True, 1.5])
def test_a_bad_setting_is_one_line(bad) -> None:
    with pytest.raises(ConfigError, match=r"finetune.freeze=.*: nothing, backbone, or N >= 1"):
        freeze_setting(bad)


def test_more_blocks_than_the_backbone_has_names_them() -> None:
    with pytest.raises(ConfigError, match=r"freeze=9: this backbone has 5 blocks \(model.stem.0, "):
        freeze(_Net(), 9)
