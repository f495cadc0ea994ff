"""Every config composes and instantiates; every plug-in YAML trains one step with gradients."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from tests.conftest import CONF, TINY_MODEL, compose_config, tiny_overrides


def _choices(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("name", ["train", "eval", "prepare"])
def test_entry_configs_compose(name: str) -> None:
    overrides = ["ckpt_path=x.ckpt"] if name == "eval" else []
    cfg = compose_config(name, overrides)
    assert cfg.task_name == name


@pytest.mark.parametrize("experiment", _choices("experiment"))
def test_experiments_compose_on_the_builtin_corpus(experiment: str) -> None:
    cfg = compose_config("train", [f"experiment={experiment}", "data=synthetic"])
    instantiate(cfg.system)  # the model builds from the composed values


@pytest.mark.parametrize(
    "group", ["trainer", "logger", "callbacks", "optimizer", "scheduler", "data", "corpus"]
)
def test_every_choice_composes(group: str, tmp_path: Path) -> None:
    for choice in _choices(group):
        if group == "corpus":
            cfg = compose_config("prepare", [f"corpus={choice}"])
            assert cfg.corpus._target_
            continue
        cfg = compose_config("train", [f"{group}={choice}", f"paths.output_dir={tmp_path}"])
        if group in ("logger", "callbacks"):
            for node in cfg[group].values():
                instantiate(node)
        elif group in ("optimizer", "scheduler"):
            system = instantiate(cfg.system)
            optimizer = system.optimizer_factory(system.parameters())
            assert system.scheduler_factory(optimizer, 100)["scheduler"] is not None


def _plugin_cases() -> list[tuple[str, str]]:
    return [("model/backbone", c) for c in _choices("model/backbone")] + [
        (g, c) for g in ("loss", "features") for c in _choices(g)
    ]


@pytest.mark.parametrize(("group", "choice"), _plugin_cases())
def test_plugin_trains_one_step(
    group: str, choice: str, tiny_data_dir: Path, tmp_path: Path
) -> None:
    overrides = [*tiny_overrides(tiny_data_dir, tmp_path), f"{group}={choice}"]
    if group != "model/backbone":
        overrides += [f"{k}={v}" for k, v in TINY_MODEL.items()]
    cfg = compose_config("train", overrides)
    system = instantiate(cfg.system)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    embeddings = system(batch.wav, batch.lengths)
    assert embeddings.shape == (len(batch.wav), system.backbone.embed_dim)
    out = system.loss(embeddings, batch.labels)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in system.backbone.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
