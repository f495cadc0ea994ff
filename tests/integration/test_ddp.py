"""Validation under DDP (2 CPU processes, gloo): every rank embeds its share, the embeddings are
gathered, and the EER equals the single-process figure exactly."""

from pathlib import Path

import lightning as L
import pytest
from hydra.utils import instantiate
from tests.conftest import tiny_train_config

from speakerid.inference import load_system
from speakerid.train import train


def _validate(ckpt: Path, cfg, devices: int) -> dict:
    system, _, _ = load_system(ckpt)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp_spawn" if devices > 1 else "auto",
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    (results,) = trainer.validate(system, datamodule=instantiate(cfg.data), verbose=False)
    return results


@pytest.mark.slow
def test_validation_eer_is_the_same_on_two_processes(tiny_data_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_train_config(tiny_data_dir, tmp_path, "test=false")
    train(cfg)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    single = _validate(ckpt, cfg, devices=1)
    double = _validate(ckpt, cfg, devices=2)
    assert double["val/eer"] == single["val/eer"]
    assert double["val/min_dcf"] == single["val/min_dcf"]
