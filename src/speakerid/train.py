"""``speakerid-train``: instantiate data, system, trainer from ``conf/train.yaml``; fit; test."""

import logging
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from speakerid.callbacks import ConfigInCheckpoint
from speakerid.cli import CONFIG_PATH, print_results, quiet_environment, report_user_errors
from speakerid.errors import ConfigError
from speakerid.utils.io import write_json

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the configured system, then test the best checkpoint; return the logged metrics."""
    L.seed_everything(cfg.seed, workers=True)
    torch.set_flush_denormal(True)  # CPU training can stall on denormal floats otherwise
    datamodule = instantiate(cfg.data)
    system = instantiate(cfg.system)
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c is not None]
    callbacks.append(ConfigInCheckpoint(OmegaConf.to_container(cfg, resolve=True)))
    loggers = [instantiate(c) for c in (cfg.logger or {}).values() if c is not None]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    trainer.fit(system, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.test:
        ckpt_path = _test_checkpoint(trainer, cfg.test_ckpt)
        (results,) = trainer.test(system, datamodule=datamodule, ckpt_path=ckpt_path)
        metrics.update(results)
        log.info("Tested %s", ckpt_path or "the final weights")
    write_json(Path(cfg.paths.output_dir) / "metrics.json", metrics)
    return metrics


def _test_checkpoint(trainer: L.Trainer, choice: str) -> str | None:
    """Path of the checkpoint to test: ``best`` by val/eer, or None for the final weights."""
    if choice == "last":
        return None
    if choice != "best":
        raise ConfigError(f"test_ckpt must be 'best' or 'last', got {choice!r}")
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if not best:
        raise ConfigError("test_ckpt=best needs the model_checkpoint callback monitoring val/eer")
    return best


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
@report_user_errors
def main(cfg: DictConfig) -> float | None:
    quiet_environment()
    metrics = train(cfg)
    print_results(
        "speakerid-train", {k: v for k, v in sorted(metrics.items()) if not k.startswith("train/")}
    )
    return metrics.get(cfg.get("optimized_metric")) if cfg.get("optimized_metric") else None


if __name__ == "__main__":
    main()
