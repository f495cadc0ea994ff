"""Shared fixtures: a tiny synthetic corpus built once per session, and config composition."""

import os
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from speakerid.cli import CONFIG_PATH
from speakerid.data.corpora import SyntheticCorpus

torch.set_flush_denormal(True)
CONF = Path(CONFIG_PATH)

# 10 speakers: 3 held out for test, 2 for validation, 5 training classes.
TINY_CORPUS = {
    "num_speakers": 10,
    "utterances_per_speaker": 6,
    "sessions_per_speaker": 2,
    "test_speakers": 3,
    "min_seconds": 1.0,
    "max_seconds": 2.0,
    "trials_per_utterance": 2,
    "num_workers": 2,
}
TINY_DATA = {
    "num_speakers": 5,
    "val_speakers": 2,
    "batch_size": 4,
    "num_workers": 0,
    "crop_seconds": 0.5,
    "eval": {"batch_size": 1},
}
TINY_MODEL = {
    "model.backbone.channels": 16,
    "model.backbone.embed_dim": 16,
    "model.backbone.attention_channels": 8,
    "model.backbone.se_channels": 8,
}


def tiny_overrides(data_dir: Path, output_dir: Path) -> list[str]:
    """Overrides that point a train config at the tiny corpus with a tiny model."""
    out = [
        f"paths.data_dir={data_dir}",
        f"paths.output_dir={output_dir}",
        f"paths.log_dir={output_dir}/logs",
    ]
    out += [f"data.corpus.{k}={v}" for k, v in TINY_CORPUS.items()]
    for key, value in TINY_DATA.items():
        nested = value.items() if isinstance(value, dict) else [("", value)]
        out += [f"data.{key}{'.' + k if k else ''}={v}" for k, v in nested]
    return out


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """Compose ``conf/<name>.yaml`` as the entry point would, with ``hydra:`` resolvers usable."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
    return cfg


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding the tiny synthetic corpus (built once) and its manifest cache."""
    data_dir = tmp_path_factory.mktemp("data")
    SyntheticCorpus(str(data_dir / "synthetic"), str(data_dir / "cache"), **TINY_CORPUS).prepare()
    return data_dir


@pytest.fixture(scope="session")
def tiny_corpus(tiny_data_dir: Path) -> SyntheticCorpus:
    return SyntheticCorpus(
        str(tiny_data_dir / "synthetic"), str(tiny_data_dir / "cache"), **TINY_CORPUS
    )


def tiny_train_config(data_dir: Path, output_dir: Path, *extra: str) -> DictConfig:
    """The default train config: tiny corpus, tiny ECAPA, 1 epoch, writing under ``output_dir``."""
    overrides = tiny_overrides(data_dir, output_dir)
    overrides += [f"{k}={v}" for k, v in TINY_MODEL.items()]
    overrides += [
        "trainer.max_epochs=1",
        "callbacks.rich_progress_bar=null",
        "trainer.enable_progress_bar=false",
    ]
    return compose_config("train", [*overrides, *extra])


@pytest.fixture
def tiny_train_cfg(tiny_data_dir: Path, tmp_path: Path) -> DictConfig:
    return tiny_train_config(tiny_data_dir, tmp_path)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained for 2 epochs (with its stored thresholds), once per session."""
    from speakerid.train import train

    out = tmp_path_factory.mktemp("tiny_run")
    train(tiny_train_config(tiny_data_dir, out, "trainer.max_epochs=2"))
    return out / "checkpoints" / "last.ckpt"
