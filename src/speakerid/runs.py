"""What every training entry point shares: the Lightning ``Trainer`` of a run, with the
configured callbacks plus the platform's own (config in every checkpoint, resumable loader
position, random state), atomic checkpoint files, and loggers that record the resolved config."""

from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from speakerid.callbacks import (
    AtomicCheckpointIO,
    ConfigInCheckpoint,
    RandomState,
    TrackTrainingBatches,
)
from speakerid.inference import load_checkpoint
from speakerid.utils.loggers import code_version


def make_trainer(cfg: DictConfig) -> tuple[L.Trainer, list]:
    """The run's Trainer with its callbacks (plus the config-in-checkpoint one), atomic
    checkpoint files, and loggers, which get the resolved config as hyperparameters."""
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c is not None]
    resolved = OmegaConf.to_container(cfg, resolve=True)
    callbacks += [ConfigInCheckpoint(resolved), TrackTrainingBatches(), RandomState()]
    resumed_wandb = _stored_wandb_id(cfg.get("ckpt_path"))
    loggers = [_logger(c, resumed_wandb) for c in (cfg.logger or {}).values() if c is not None]
    resolved = {**resolved, "code": code_version()}  # what the loggers record
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )
    for lg in loggers:
        lg.log_hyperparams(resolved)
    return trainer, loggers


def _logger(node: DictConfig, wandb_id: str | None):
    """Instantiate a logger; a W&B one continues the run ``wandb_id`` when resuming."""
    resume = {"id": wandb_id, "resume": "allow"} if wandb_id and "wandb" in node._target_ else {}
    return instantiate(node, **resume)


def _stored_wandb_id(ckpt_path: str | None) -> str | None:
    """The W&B run a checkpoint was logged to, to resume it (None: not resuming or none)."""
    if not ckpt_path or not Path(ckpt_path).is_file():
        return None
    return load_checkpoint(ckpt_path)["speakerid"].get("wandb_id")
