"""What every training entry point shares: the Lightning ``Trainer`` of a run, with the
configured callbacks plus the platform's own (config in every checkpoint, resumable loader
position, random state, a checkpoint on SIGTERM / Ctrl+C), atomic checkpoint files, and loggers
that record the resolved config; the checkpoint a run resumes from; and the exit of a run that a
signal stopped or a full or read-only disk broke."""

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from speakerid.callbacks import (
    AtomicCheckpointIO,
    ConfigInCheckpoint,
    RandomState,
    StopOnSignal,
    TrackTrainingBatches,
)
from speakerid.errors import STORAGE_ERRORS, ConfigError, SpeakerIdError
from speakerid.inference import load_checkpoint
from speakerid.utils.loggers import code_version


class Stopped(SystemExit):
    """A run stopped by a signal: exit status ``128 + signal`` (143 SIGTERM, 130 Ctrl+C), and
    :attr:`line`, what was saved and how to continue. A ``SystemExit``, so that a Hydra sweep
    stops with it instead of going on to its next run."""

    def __init__(self, signum: int, line: str) -> None:
        super().__init__(128 + signum)
        self.line = line


class StopPredicting(L.Callback):
    """A stop asked for while ``trainer.predict`` embeds: Lightning's handler records SIGTERM,
    but its prediction loop never looks (it would embed everything, then write the results), and
    it turns Ctrl+C into exit status 1. Both end the prediction after the current batch as
    :class:`Stopped` (143 / 130); nothing of the stopped stage is written."""

    def __init__(self, what: str = "embedding") -> None:
        self.what = what

    def on_predict_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.received_sigterm:
            raise Stopped(signal.SIGTERM, f"SIGTERM while {self.what}; nothing written")

    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            raise Stopped(signal.SIGINT, f"Ctrl+C while {self.what}; nothing written") from None


def make_trainer(cfg: DictConfig) -> tuple[L.Trainer, list]:
    """The run's Trainer with its callbacks (plus the platform's own), atomic checkpoint files,
    and loggers, which get the resolved config as hyperparameters. A setting the Trainer, a
    callback or a logger refuses is one line naming its group and the reason."""
    callbacks = [_built(c, f"callbacks.{k}") for k, c in cfg.callbacks.items() if c is not None]
    resolved = OmegaConf.to_container(cfg, resolve=True)
    callbacks += [ConfigInCheckpoint(resolved), TrackTrainingBatches(), RandomState()]
    callbacks += [StopOnSignal()]
    resumed_wandb = _stored_wandb_id(resume_checkpoint(cfg))
    groups = cfg.get("logger") or {}  # logger=[] or ~logger: none
    loggers = [_logger(c, f"logger.{k}", resumed_wandb) for k, c in groups.items() if c]
    resolved = {**resolved, "code": code_version()}  # what the loggers record
    trainer: L.Trainer = _built(
        cfg.trainer,
        "trainer",
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[AtomicCheckpointIO()],
    )
    for lg in loggers:
        lg.log_hyperparams(resolved)
    return trainer, loggers


def _built(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """``instantiate(node)``; a class refusing its settings is a ConfigError naming ``key`` and
    the class's own reason (Hydra's message keeps the reason off its first line)."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if cause is None or isinstance(cause, SpeakerIdError):
            raise
        reason = " ".join(str(cause).split()) or type(cause).__name__
        raise ConfigError(f"{key}: {reason}") from None


def _logger(node: DictConfig, key: str, wandb_id: str | None):
    """Instantiate a logger; a W&B one continues the run ``wandb_id`` when resuming."""
    resume = {"id": wandb_id, "resume": "allow"} if wandb_id and "wandb" in node._target_ else {}
    return _built(node, key, **resume)


def _stored_wandb_id(ckpt_path: str | None) -> str | None:
    """The W&B run a checkpoint was logged to, to resume it (None: not resuming or none)."""
    if not ckpt_path:
        return None
    return load_checkpoint(ckpt_path)["speakerid"].get("wandb_id")


def checkpoint_folders(cfg: DictConfig) -> list[Path]:
    """Where the run's ModelCheckpoint callbacks write, and ``<run>/checkpoints``."""
    folders = [
        Path(node.dirpath)
        for node in (cfg.get("callbacks") or {}).values()
        if node is not None and str(node.get("_target_", "")).endswith("ModelCheckpoint")
        if node.get("dirpath")
    ]
    return list(dict.fromkeys([*folders, Path(cfg.paths.output_dir) / "checkpoints"]))


def last_checkpoint(folders: list[Path]) -> Path | None:
    """The newest ``last*.ckpt`` in ``folders`` (Lightning's meaning of ``ckpt_path=last``)."""
    found = [p for folder in folders for p in folder.glob("last*.ckpt") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns, default=None)


def resume_checkpoint(cfg: DictConfig) -> str | None:
    """The file ``ckpt_path`` names (``last``: the run folder's last checkpoint), or None.

    Raises:
        ConfigError: there is no such file: a run never starts afresh when asked to resume.
    """
    value = cfg.get("ckpt_path")
    if value is None:
        return None
    if str(value) != "last":
        if not Path(value).is_file():
            raise ConfigError(f"ckpt_path={value}: no such checkpoint file")
        return str(value)
    folders = checkpoint_folders(cfg)
    found = last_checkpoint(folders)
    if found is None:
        raise ConfigError(
            f"ckpt_path=last: nothing to resume, no last*.ckpt in {folders[-1]}; continue a run "
            "in its own folder: hydra.run.dir=<that run's folder> ckpt_path=last"
        )
    return str(found)


def run_stage(trainer: L.Trainer, stage: Callable[[], Any]) -> Any:
    """``stage()`` (``trainer.fit``/``test``), with a stop by a signal raised as :class:`Stopped`
    (Lightning exits 0 after SIGTERM, and 1 after Ctrl+C)."""
    stop = next((c for c in trainer.callbacks if isinstance(c, StopOnSignal)), None)
    try:
        return stage()
    except SystemExit:  # Lightning's SIGTERMException, or its exit after a second Ctrl+C
        if stop is None or stop.signum is None:
            raise
        raise Stopped(stop.signum, _stopped_line(trainer, stop)) from None


def _stopped_line(trainer: L.Trainer, stop: StopOnSignal) -> str:
    """What a stopped run saved, and the command line that continues it."""
    where = f"epoch {trainer.current_epoch}, step {trainer.global_step}"
    run = trainer.default_root_dir
    if stop.saved is not None:
        return (
            f"{signal.Signals(stop.signum).name} at {where}: saved {stop.saved}; continue with "
            f"hydra.run.dir={run} ckpt_path=last"
        )
    kept = last_checkpoint([Path(c.dirpath) for c in trainer.checkpoint_callbacks if c.dirpath])
    resume = f"{kept} is the last checkpoint" if kept else "no checkpoint was written"
    return f"{signal.Signals(stop.signum).name} at {where}, nothing saved now; {resume}"


@contextmanager
def storage_errors(cfg: DictConfig) -> Iterator[None]:
    """A full disk or a read-only or forbidden folder met by the run: one line naming the file
    and saying how to continue (the checkpoints written so far are complete: atomic)."""
    try:
        yield
    except OSError as err:
        if err.errno not in STORAGE_ERRORS:
            raise
        path = err.filename2 or err.filename
        what = f"{path}: {os.strerror(err.errno)}" if path else os.strerror(err.errno)
        kept = last_checkpoint(checkpoint_folders(cfg))
        resume = (
            f"{kept} is intact: fix that, then continue with hydra.run.dir="
            f"{cfg.paths.output_dir} ckpt_path=last"
            if kept
            else "no last checkpoint was written yet: nothing to resume"
        )
        raise ConfigError(f"{what}; {resume}") from None
