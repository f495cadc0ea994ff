"""``init_head=inherit``: WeSpeaker's large-margin stage starts from the whole averaged model,
its ArcMargin head and the speed copies' classes included, so its first logits are the averaged
model's; a head that does not fit is one line."""

from pathlib import Path

import pytest
import torch
from tests.conftest import compose_config, tiny_overrides

from speakerid.errors import ConfigError
from speakerid.inference import load_system
from speakerid.train import build, train

CPU = [
    "trainer=cpu",
    "trainer.devices=1",
    "data.num_speakers=null",
    "data.num_workers=0",
    "data.crop_seconds=0.5",
    "callbacks.rich_progress_bar=null",
    "trainer.enable_progress_bar=false",
    "model.backbone.width=4",
    "model.backbone.embed_dim=16",
]


@pytest.fixture(scope="module")
def averaged(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first WeSpeaker stage (speed classes drawn per crop), one epoch, averaged."""
    out = tmp_path_factory.mktemp("first")
    first = ["experiment=wespeaker_resnet34", *tiny_overrides(tiny_data_dir, out), *CPU]
    train(compose_config("train", [*first, "trainer.max_epochs=1", "test=false"]))
    return out / "checkpoints" / "averaged.ckpt"


def _lm_stage(tiny_data_dir: Path, out: Path, averaged: Path, *extra: str):
    overrides = [*tiny_overrides(tiny_data_dir, out), *CPU, f"init_from={averaged}", *extra]
    return build(compose_config("train", ["experiment=wespeaker_resnet34_lm", *overrides]))


def _logits(system, batch) -> torch.Tensor:
    system.eval()
    with torch.no_grad():
        return system.loss(system(batch.wav, batch.lengths), batch.labels).logits


def test_the_lm_stage_starts_with_the_averaged_models_logits(
    averaged: Path, tiny_data_dir: Path, tmp_path: Path
) -> None:
    cfg, datamodule, system = _lm_stage(tiny_data_dir, tmp_path, averaged)
    assert cfg.init_head == "inherit" and cfg.data.speed_mode == "classes"
    assert len(datamodule.speakers) == 3 * 5  # the speed copies' classes, no crop perturbed
    batch = next(iter(datamodule.train_dataloader()))
    assert int(batch.labels.max()) < 5  # the LM stage's crops are the plain speakers'
    reference, _, _ = load_system(averaged)
    ours, theirs = _logits(system, batch), _logits(reference, batch)
    assert ours.shape == (len(batch.labels), 15)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    _, _, fresh = _lm_stage(tiny_data_dir, tmp_path / "fresh", averaged, "init_head=fresh")
    assert not torch.allclose(_logits(fresh, batch), theirs, atol=1e-2)  # the head matters


def test_an_inherited_head_that_does_not_fit_is_one_line(
    averaged: Path, tiny_data_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as refused:
        _lm_stage(tiny_data_dir, tmp_path, averaged, "data.speed_classes=[]")  # 5 classes, not 15
    line = str(refused.value)
    assert "\n" not in line and line.startswith(
        f"{averaged}: init_head=inherit: its loss head does not fit this run's (size mismatch"
    )
    assert line.endswith("(set init_head=fresh)")
    with pytest.raises(ConfigError, match="init_head: fresh or inherit, got 'both'"):
        _lm_stage(tiny_data_dir, tmp_path, averaged, "init_head=both")
