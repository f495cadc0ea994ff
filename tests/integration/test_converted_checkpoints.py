"""Converters write through :func:`speakerid.checkpoints.write_converted`: a checkpoint that loads
like a trained one, with its source; never over a file it did not write, never without every
backbone tensor."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from speakerid.checkpoints import compose_run_config, write_converted
from speakerid.errors import ConfigError
from speakerid.inference import load_system

TINY = [
    "data.num_speakers=5",  # the head: built, not given (taken from the system)
    "model.backbone.channels=16",
    "model.backbone.embed_dim=8",
    "model.backbone.attention_channels=8",
    "model.backbone.se_channels=8",
]


def _backbone(tmp_path: Path) -> tuple:
    config = compose_run_config(TINY, tmp_path)
    weights = {
        f"backbone.{k}": v for k, v in instantiate(config.model.backbone).state_dict().items()
    }
    return config, weights


def test_a_converted_checkpoint_loads_like_a_trained_one(tmp_path: Path) -> None:
    config, weights = _backbone(tmp_path)
    source = {"toolkit": "test", "model": "tiny", "sha256": "0" * 64}
    out = tmp_path / "converted.ckpt"
    assert write_converted(out, config, weights, source, [])["checkpoint"] == str(out)
    system, run_cfg, checkpoint = load_system(out)
    assert checkpoint["speakerid"]["source"] == source and run_cfg.model.backbone.channels == 16
    for name, value in weights.items():
        assert torch.equal(system.state_dict()[name], value)
    write_converted(out, config, weights, source, [])  # a re-conversion replaces its own file


def test_a_converter_refuses_foreign_outputs_inputs_and_missing_tensors(tmp_path: Path) -> None:
    config, weights = _backbone(tmp_path)
    mine = tmp_path / "notes.ckpt"
    mine.write_text("the user's file")
    with pytest.raises(ConfigError, match=r"notes\.ckpt: exists and is not a speakerid checkpoint"):
        write_converted(mine, config, weights, {}, [])
    assert mine.read_text() == "the user's file"
    source_file = tmp_path / "avg_model.pt"
    with pytest.raises(ConfigError, match=r"overlaps an input"):
        write_converted(source_file, config, weights, {}, [source_file])
    name = next(iter(weights))
    partial = {k: v for k, v in weights.items() if k != name}
    with pytest.raises(ConfigError, match=rf"do not fit .*EcapaTdnn \(missing \['{name}'\]"):
        write_converted(tmp_path / "x.ckpt", config, partial, {"model": "tiny"}, [])
    assert not (tmp_path / "x.ckpt").exists()
