"""``speakerid-train``: instantiate data, system, trainer from ``conf/train.yaml``; fit; test."""

import copy
import logging
import signal
import sys
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from speakerid.callbacks import AverageLastEpochs, nonfinite_weights
from speakerid.cli import hydra_entry, print_results, quiet_environment
from speakerid.data.augment import GENERATED
from speakerid.errors import ConfigError
from speakerid.finetune import (
    KeepFrozen,
    finetune_config,
    freeze,
    guard,
    initialize,
    store_kept_thresholds,
)
from speakerid.inference import save_thresholds
from speakerid.runs import Stopped, make_trainer, resume_checkpoint, run_stage, storage_errors
from speakerid.settings import check_settings
from speakerid.utils.io import write_json
from speakerid.utils.loggers import close_loggers

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the configured system, then test it (``test_ckpt``); return the logged metrics."""
    check_settings(cfg)
    resume = resume_checkpoint(cfg)  # before any work: asked to resume, a run never starts afresh
    check_augmentation_sources(cfg)  # before any work, as the checks above
    if cfg.test and cfg.test_ckpt not in ("best", "last", "averaged"):
        raise ConfigError(f"test_ckpt must be best, last or averaged, got {cfg.test_ckpt!r}")
    if cfg.test and cfg.test_ckpt == "averaged" and not cfg.callbacks.get("average"):
        raise ConfigError("test_ckpt=averaged needs callbacks.average (AverageLastEpochs)")
    L.seed_everything(cfg.seed, workers=True)
    # the data module restores the training loader's position itself (speakerid.data.samplers)
    warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended")
    # a ShardDataset's length is exact: it sizes every worker's share itself
    warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")
    torch.set_flush_denormal(True)  # CPU training can stall on denormal floats otherwise
    cfg, datamodule, system = build(cfg)
    finetuning = bool(cfg.get("finetune"))
    start = copy.deepcopy(system.state_dict()) if finetuning else None
    trainer, loggers = make_trainer(cfg)
    if finetuning:
        trainer.callbacks.append(KeepFrozen(freeze(system.backbone, cfg.finetune.freeze)))
    run_stage(trainer, lambda: trainer.fit(system, datamodule=datamodule, ckpt_path=resume))
    broken = nonfinite_weights(system.state_dict())
    if broken:
        raise ConfigError(
            f"training diverged: NaN or infinite weights ({', '.join(broken[:3])}); checkpoints "
            f"holding them were not written ({cfg.paths.output_dir}/checkpoints keeps finite ones)"
        )
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.test:
        metrics.update(_test(trainer, system, datamodule, cfg, start))
    write_json(Path(cfg.paths.output_dir) / "metrics.json", metrics)
    close_loggers(loggers)
    return metrics


def build(cfg: DictConfig) -> tuple[DictConfig, L.LightningDataModule, L.LightningModule]:
    """The run's config (``experiment=finetune``: the checkpoint's front end and backbone;
    ``num_speakers: null``: counted), its data module, and its system started from
    ``init_from`` (the backbone; the head too with ``init_head=inherit``)."""
    cfg = finetune_config(cfg)
    datamodule = instantiate(cfg.data)
    cfg = with_counted_speakers(cfg, datamodule)
    system = instantiate(cfg.system)
    if cfg.get("init_from"):
        front_end = bool(cfg.get("finetune"))  # the checkpoint's front end: its buffers too
        initialize(system, cfg.init_from, cfg.get("init_head", "fresh"), front_end)
    return cfg, datamodule, system


def augmentation_sources(node, key: str) -> list[tuple[str, str, object]]:
    """``(key of its root, class, root)`` of every ``Reverb`` / ``AdditiveNoise`` step under the
    config ``node`` at ``key``, and ``(key, "ChannelAugment", None)`` for the synthetic channel."""
    if isinstance(node, DictConfig | dict):
        target = str(node.get("_target_", "")).rsplit(".", 1)[-1]
        own = []
        if target in ("Reverb", "AdditiveNoise"):
            own = [(f"{key}.root", target, node.get("root"))]
        elif target == "ChannelAugment":
            own = [(key, target, None)]
        return own + [s for k, v in node.items() for s in augmentation_sources(v, f"{key}.{k}")]
    if isinstance(node, list | tuple) or OmegaConf.is_list(node):
        return [s for i, v in enumerate(node) for s in augmentation_sources(v, f"{key}.{i}")]
    return []


SOURCE_NAMES = {"Reverb": "RIRS_NOISES", "AdditiveNoise": "MUSAN"}


def check_augmentation_sources(cfg: DictConfig) -> None:
    """A VoxCeleb run refuses to start with a noise or room source left unset (``root: null``):
    the published recipes use MUSAN and RIRS_NOISES, so generated stand-ins must be chosen
    (``root: generated``). Other real corpora only say so; the built-in corpus is silent."""
    corpus = cfg.data.get("corpus") or {}
    if str(corpus.get("_target_", "")).endswith("SyntheticCorpus"):
        return
    sources = augmentation_sources(cfg.data.get("augment"), "data.augment")
    sources += augmentation_sources(cfg.system.get("wave_augment"), "system.wave_augment")
    unset = [(k, SOURCE_NAMES[c]) for k, c, root in sources if c in SOURCE_NAMES and root is None]
    if unset and _trains_on_voxceleb(corpus):
        keys = ", ".join(f"{k} ({name})" for k, name in unset)
        raise ConfigError(
            f"a VoxCeleb run trains with MUSAN and RIRS_NOISES: set {keys} to their folders, or "
            f"to 'generated' to train on generated noise and rooms instead (docs/recipes.md)"
        )
    generated = [f"{c} ({k})" for k, c, root in sources if root is None or root == GENERATED]
    if generated:
        log.warning(
            "this run augments a real corpus with generated noise/rooms only (%s): set the "
            "MUSAN / RIRS_NOISES roots (docs/corpora.md) to train as the published recipes do",
            ", ".join(dict.fromkeys(generated)),
        )


def _trains_on_voxceleb(corpus) -> bool:
    """Whether the corpus config trains on VoxCeleb (itself, or a member not ``eval_only``)."""
    if str(corpus.get("_target_", "")).endswith("VoxCelebCorpus"):
        return True
    members = corpus.get("corpora") or {}
    evaluated_only = set(corpus.get("eval_only") or ())
    return any(_trains_on_voxceleb(c) for n, c in members.items() if n not in evaluated_only)


def with_counted_speakers(cfg: DictConfig, datamodule) -> DictConfig:
    """The run's config with ``data.num_speakers: null`` resolved to the data's training classes
    (a new config: the loss heads, the stored config and the loggers all see the count)."""
    if cfg.data.get("num_speakers", 0) is not None:
        return cfg
    datamodule.setup("fit")
    count = len(datamodule.speakers)
    if count < 2:  # the settings table checks a number given; this is a number counted
        raise ConfigError(
            f"data.num_speakers=null: {datamodule.manifest.root} gives {count} training "
            "class(es); training needs at least 2"
        )
    log.info("data.num_speakers=null: %d training classes", count)
    return OmegaConf.merge(cfg, {"data": {"num_speakers": count}})


def _test(trainer: L.Trainer, system, datamodule, cfg: DictConfig, start: dict | None) -> dict:
    """Test the ``test_ckpt`` weights and store their thresholds; with ``start`` (the weights
    fine-tuning started from), test those too and keep the better (:func:`finetune.guard`)."""
    ckpt_path = _test_checkpoint(trainer, cfg.test_ckpt)
    (results,) = run_stage(
        trainer, lambda: trainer.test(system, datamodule=datamodule, ckpt_path=ckpt_path)
    )
    log.info("Tested %s", ckpt_path or "the final weights")
    if start is None:
        _store_thresholds(trainer, ckpt_path, results, system.far_target, cfg.data.test_trials)
        return results
    metrics, kept = run_stage(
        trainer, lambda: guard(trainer, system, datamodule, start, results, ckpt_path)
    )
    if trainer.global_rank == 0:
        store_kept_thresholds(kept, metrics, system.far_target, cfg.data.test_trials)
    return metrics


def _test_checkpoint(trainer: L.Trainer, choice: str) -> str | None:
    """Path of the checkpoint to test: ``best`` by the monitored metric, ``averaged`` (the
    average of the last epochs), or None (final weights)."""
    if choice == "last":
        return None
    if choice == "averaged":
        averaging = [c for c in trainer.callbacks if isinstance(c, AverageLastEpochs)]
        if not averaging:
            raise ConfigError("test_ckpt=averaged needs callbacks.average (AverageLastEpochs)")
        return averaging[0].path
    monitored = [c.best_model_path for c in trainer.checkpoint_callbacks if c.monitor]
    if not monitored or not monitored[0]:
        raise ConfigError("test_ckpt=best needs a model_checkpoint callback with a monitor")
    return monitored[0]


def _store_thresholds(
    trainer: L.Trainer, ckpt_path: str | None, results: dict, far_target: float, trials: str
) -> None:
    """Save the test's operating thresholds in the tested checkpoint (``speakerid-verify``)."""
    if ckpt_path is None:  # the final weights: the monitor-less (per-epoch) checkpoint holds them
        last = [c.best_model_path for c in trainer.checkpoint_callbacks if not c.monitor]
        ckpt_path = last[0] if last and last[0] else None
    if ckpt_path is None or trainer.global_rank != 0:
        return
    save_thresholds(
        ckpt_path,
        {
            "scoring": "cosine",
            "eer": results["test/eer_threshold"],
            "far": results["test/far_threshold"],
            "far_target": far_target,
            "trials": trials,
        },
    )


@hydra_entry("train")
def main(cfg: DictConfig) -> float | None:
    quiet_environment()
    try:
        with storage_errors(cfg):
            metrics = train(cfg)
    except Stopped as stop:
        print(f"stopped: {stop.line}", file=sys.stderr, flush=True)
        raise
    except KeyboardInterrupt:  # outside Lightning's loops (within them, Stopped)
        print("stopped: SIGINT outside the training loop; nothing saved", file=sys.stderr)
        raise Stopped(signal.SIGINT, "") from None
    print_results(
        "speakerid-train", {k: v for k, v in sorted(metrics.items()) if not k.startswith("train/")}
    )
    return metrics.get(cfg.get("optimized_metric")) if cfg.get("optimized_metric") else None


if __name__ == "__main__":
    main()
