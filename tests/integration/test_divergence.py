"""A run that diverges fails with one line and writes no checkpoint holding NaN; a checkpoint
holding NaN is refused when loaded."""

from pathlib import Path

import pytest
import torch
from tests.conftest import tiny_train_config

from speakerid.errors import ConfigError
from speakerid.inference import load_checkpoint, load_system
from speakerid.train import train


def test_a_diverged_run_fails_and_keeps_only_finite_checkpoints(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    cfg = tiny_train_config(tiny_data_dir, tmp_path, "loss.margin=nan", "test=false")
    with pytest.raises(ConfigError, match=r"training diverged: NaN or infinite (weights|val)"):
        train(cfg)
    for ckpt in (tmp_path / "checkpoints").glob("*.ckpt"):  # none, or finite ones only
        state = load_checkpoint(ckpt)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_a_checkpoint_with_nan_weights_is_refused(tiny_data_dir: Path, tmp_path: Path) -> None:
    train(tiny_train_config(tiny_data_dir, tmp_path, "test=false"))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    checkpoint = load_checkpoint(ckpt)
    name = next(k for k, v in checkpoint["state_dict"].items() if v.is_floating_point())
    checkpoint["state_dict"][name][0] = float("nan")
    torch.save(checkpoint, ckpt)
    with pytest.raises(ConfigError, match=rf"last\.ckpt: NaN or infinite weights \({name}"):
        load_system(ckpt)
