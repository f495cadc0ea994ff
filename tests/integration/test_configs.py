"""Every config composes and instantiates; every plug-in YAML trains one step with gradients."""

import re
from pathlib import Path

import pytest
import torch
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import OmegaConf
from tests.conftest import CONF, TINY_MODEL, compose_config, tiny_overrides

from speakerid.contracts import NeedsTargets
from speakerid.losses import MultiTask

TWO_STAGE = ("deep_speaker_triplet", "finetune")  # start from another run: init_from=


def _choices(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "name",
    ["train", "eval", "prepare", "embed", "enhance", "verify", "identify", "enroll", "search"],
)
def test_entry_configs_compose(name: str) -> None:
    overrides = {
        "eval": ["ckpt_path=x.ckpt"],
        "enhance": ["data.store=x"],
        "verify": ["ckpt_path=x.ckpt"],
        "enroll": ["store=x"],
        "search": ["store=x"],
    }.get(name, [])
    if name == "identify":
        overrides = ["ckpt_path=x.ckpt", "enrol_dir=x"]
    cfg = compose_config(name, overrides)
    assert cfg.get("task_name", name) == name  # verify/identify make no run folder


def _leaves(node, prefix: str = ""):
    """(dotted key, value) of every leaf of a plain YAML mapping; interpolations and
    mandatory values (???) skipped."""
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _leaves(value, dotted + ".")
        elif not (isinstance(value, str) and ("${" in value or value == "???")):
            yield dotted, value


def _own_values(path: Path, package: str = "") -> tuple[list, dict]:
    """A config file's values (dotted keys under ``package``) and its ``override`` defaults."""
    raw = yaml.safe_load(path.read_text()) or {}
    overrides = {}
    for entry in raw.pop("defaults", []):
        if isinstance(entry, dict):
            for key, choice in entry.items():
                if key.startswith("override "):
                    overrides[key.removeprefix("override ").lstrip("/")] = choice
    return list(_leaves(raw, f"{package}." if package else "")), overrides


@pytest.mark.parametrize("experiment", _choices("experiment"))
def test_experiments_compose_with_their_own_values(experiment: str) -> None:
    """Every value and group choice an experiment file sets is what the composed config holds
    (a file that lands in the wrong package, or is overridden by a default, fails here)."""
    if experiment.startswith("enhance_"):  # experiments of speakerid-enhance
        cfg = compose_config("enhance", [f"experiment={experiment}", "data.store=x"])
    else:
        two_stage = experiment in TWO_STAGE or experiment.endswith("_lm")
        extra = ["init_from=x.ckpt"] if two_stage else []
        cfg = compose_config("train", [f"experiment={experiment}", *extra])
    values, overrides = _own_values(CONF / "experiment" / f"{experiment}.yaml")
    for key, value in values:
        assert OmegaConf.select(cfg, key) == value, f"{experiment}: {key}"
    choices = HydraConfig.get().runtime.choices
    for group, choice in overrides.items():
        assert choices[group] == choice, f"{experiment}: {group}"
    if experiment.startswith("enhance_"):
        assert instantiate(cfg.system).enhancer.embed_dim == cfg.model.embed_dim
        return
    if cfg.data.num_speakers is None:
        cfg.data.num_speakers = 10  # counted from the data when training
    assert instantiate(cfg.system).backbone.embed_dim == cfg.model.embed_dim


@pytest.mark.parametrize(
    "experiment", [e for e in _choices("experiment") if not e.startswith("enhance_")]
)
def test_every_training_experiment_takes_a_step(
    experiment: str, tiny_data_dir: Path, tmp_path: Path
) -> None:
    """Its own front end, backbone (full size), head and sampler, on the tiny corpus."""
    overrides = [f"experiment={experiment}", *tiny_overrides(tiny_data_dir, tmp_path)]
    if experiment in TWO_STAGE or experiment.endswith("_lm"):
        overrides.append("init_from=null")  # the two-stage wiring has its own test
    cfg = compose_config("train", overrides)
    if cfg.data.sampler is not None:
        cfg.data.sampler.speakers, cfg.data.sampler.utterances = 2, 2
    if cfg.data.speed_classes:  # speed-perturbed classes: the head is sized from the data
        cfg.data.num_speakers = None
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    cfg.data.num_speakers = len(datamodule.speakers)
    system = instantiate(cfg.system)
    batch = next(iter(datamodule.train_dataloader()))
    wav, lengths, labels = batch.wav, batch.lengths, batch.labels
    if system.wave_augment is not None:  # augmented copies concatenated to the batch
        wav, lengths, labels = system._augment_batch(wav, lengths, labels)
        assert len(wav) == len(labels) == 5 * len(batch.wav)
    out = system.loss(system(wav, lengths), labels)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in system.backbone.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize(
    ("group", "choice"),
    [
        (g, c)
        for g in ("trainer", "logger", "callbacks", "optimizer", "scheduler", "data", "corpus")
        for c in _choices(g)
    ],
)
def test_every_choice_composes_with_its_values(group: str, choice: str, tmp_path: Path) -> None:
    """The composed group holds the file's values, and what it builds is of the named type."""
    entry = "prepare" if group == "corpus" else "train"
    cfg = compose_config(entry, [f"{group}={choice}", f"paths.output_dir={tmp_path}"])
    values, _ = _own_values(CONF / group / f"{choice}.yaml", group)
    if group == "data":  # data.augment is the augment group's to fill
        values = [(k, v) for k, v in values if k != "data.augment"]
    for key, value in values:
        assert OmegaConf.select(cfg, key) == value, f"{group}={choice}: {key}"
    if group in ("logger", "callbacks"):
        for node in cfg[group].values():
            if node is not None:
                assert isinstance(instantiate(node), (Logger, Callback)), node._target_
    elif group in ("optimizer", "scheduler"):
        system = instantiate(cfg.system)
        optimizer = system.optimizer_factory(system.parameters())
        assert type(optimizer).__name__.lower() == cfg.optimizer._target_.rsplit(".", 1)[-1].lower()
        if group == "scheduler":
            assert system.scheduler_factory(optimizer, 100)["scheduler"] is not None


@pytest.mark.parametrize("search", _choices("hparams_search"))
def test_every_hyperparameter_search_composes_and_names_real_keys(search: str) -> None:
    """With the experiment its description names (``experiment=...``), if any."""
    header = (CONF / "hparams_search" / f"{search}.yaml").read_text().split("\n", 2)[1]
    experiment = re.findall(r"experiment=(\w+)", header)
    cfg = compose_config(
        "train", [f"hparams_search={search}", *(f"experiment={e}" for e in experiment)]
    )
    sweeper = HydraConfig.get().sweeper
    assert "optuna" in sweeper._target_ and HydraConfig.get().mode.name == "MULTIRUN"
    for key in sweeper.params:
        assert OmegaConf.select(cfg, key) is not None, key


def test_the_slurm_launcher_starts_one_task_per_gpu() -> None:
    overrides = ["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=4", "trainer=ddp"]
    compose_config("train", [*overrides, "trainer.devices=4"])
    launcher = HydraConfig.get().launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.tasks_per_node == 4 and launcher.nodes == 1  # (checked against its schema)


def _plugin_cases() -> list[tuple[str, str]]:
    return [("model/backbone", c) for c in _choices("model/backbone")] + [
        (g, c)
        for g in ("loss", "features", "sampler", "augment", "feature_augment")
        for c in _choices(g)
    ]


SMALL_BATCHES = ["sampler=speaker_batches", "data.sampler.speakers=2", "data.sampler.utterances=2"]


@pytest.mark.parametrize(("group", "choice"), _plugin_cases())
def test_plugin_trains_one_step(
    group: str, choice: str, tiny_data_dir: Path, tmp_path: Path
) -> None:
    key = "augment@data.augment" if group == "augment" else group
    overrides = [*tiny_overrides(tiny_data_dir, tmp_path), f"{key}={choice}"]
    if group != "model/backbone":
        overrides += [f"{k}={v}" for k, v in TINY_MODEL.items()]
    if group == "loss":  # N x M batches suit every head (metric heads need them)
        overrides += SMALL_BATCHES
    if group == "sampler":
        overrides += ["data.sampler.speakers=2"]
    if choice == "multitask":
        overrides += ["data.extra_labels=[gender]"]
    if choice == "triplet":  # a hinge: with margin 2 every anchor has a loss, so grads flow
        overrides += ["loss.margin=2.0"]
    cfg = compose_config("train", overrides)
    system = instantiate(cfg.system)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert torch.isfinite(batch.wav).all()  # waveform augmentation included
    embeddings = system(batch.wav, batch.lengths)
    assert embeddings.shape == (len(batch.wav), system.backbone.embed_dim)
    out = system.loss(embeddings, _head_inputs(system.loss, batch.labels, embeddings.shape[1], 5))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in system.backbone.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def _head_inputs(head: torch.nn.Module, speakers: torch.Tensor, dim: int, classes: int):
    """Labels (B,3) — speaker, session, other speaker — and, for target heads, random targets;
    a multi-task head gets (B,2), speaker and gender (the data module's ``extra_labels``)."""
    if speakers.ndim == 2:  # already (B, 1 + K) from the data module
        return speakers
    if isinstance(head, MultiTask):
        return torch.stack([speakers, speakers % 2], dim=1)
    if isinstance(head, NeedsTargets):
        head.set_targets(torch.randn(classes, dim))
    sessions = torch.arange(len(speakers)) % 2
    return torch.stack([speakers, sessions, (speakers + 1) % classes], dim=1)


@pytest.mark.parametrize("enhancer", _choices("model/enhancer"))
@pytest.mark.parametrize("loss", _choices("enhance_loss"))
def test_enhancer_and_head_train_one_step(enhancer: str, loss: str) -> None:
    cfg = compose_config(
        "enhance",
        [
            "data.store=x",
            "data.embed_dim=16",
            "data.num_speakers=5",
            f"model/enhancer={enhancer}",
            f"enhance_loss={loss}",
        ],
    )
    system = instantiate(cfg.system)
    x = torch.nn.functional.normalize(torch.randn(12, 16), dim=1)
    speakers = torch.arange(12) % 3  # several utterances and two sessions per speaker
    out = system.loss(system(x), _head_inputs(system.loss, speakers, 16, 5))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in system.enhancer.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_the_configuration_reference_is_generated_from_conf() -> None:
    from speakerid.configdoc import render

    committed = (CONF.parent / "docs" / "configuration.md").read_text()
    assert committed == render(CONF), "docs/configuration.md is stale: run `make docs`"
