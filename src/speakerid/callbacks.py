"""Lightning callbacks and plugins of the platform."""

import logging
import random
import signal
import threading
from pathlib import Path
from types import FrameType

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from speakerid.data.samplers import ResumableLoader
from speakerid.data.shards import ShardLoader
from speakerid.errors import STORAGE_ERRORS, ConfigError
from speakerid.utils.io import atomic_path
from speakerid.utils.loggers import code_version

log = logging.getLogger(__name__)


class ConfigInCheckpoint(L.Callback):
    """Stores the run's resolved config in each checkpoint: a checkpoint alone rebuilds its model.

    Only plain containers are stored, so checkpoints load with ``torch.load(weights_only=True)``.
    """

    def __init__(self, config: dict) -> None:
        self.config = config
        self.code = code_version()  # version, git commit, local changes

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict
    ) -> None:
        checkpoint["speakerid"] = {"config": self.config, **self.code}
        for logger in trainer.loggers:  # a resumed run continues the same W&B run
            if isinstance(logger, WandbLogger) and logger._experiment is not None:
                checkpoint["speakerid"]["wandb_id"] = logger.version


def nonfinite_weights(state: dict) -> list[str]:
    """Names of the floating-point tensors of a state dict that hold NaN or infinity."""
    return [
        name
        for name, value in state.items()
        if isinstance(value, torch.Tensor)
        and value.is_floating_point()
        and not torch.isfinite(value).all()
    ]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic: the file appears complete or not at all
    (a run killed while saving leaves the previous ``last.ckpt`` intact). Weights holding NaN or
    infinity are never written: the previous, finite checkpoint stays (the run then fails at its
    end, ``speakerid.train``)."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        broken = nonfinite_weights(checkpoint.get("state_dict", {}))
        if broken:
            log.error("%s not written: NaN or infinite weights in %s", path, ", ".join(broken[:3]))
            return
        try:
            with atomic_path(path) as tmp:
                super().save_checkpoint(checkpoint, tmp, storage_options)
        except OSError as err:  # named by the file it was for, not the temporary ones
            if err.errno not in STORAGE_ERRORS:
                raise
            raise OSError(err.errno, err.strerror, str(path)) from None


class TrackTrainingBatches(L.Callback):
    """Tells a resumable training loader how many batches of the epoch the loop has finished, so
    a checkpoint records the loop's position, not the prefetching loader's."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        loader = trainer.train_dataloader
        if isinstance(loader, (ResumableLoader, ShardLoader)):
            loader.finished_batches = batch_idx + 1


class RandomState(L.Callback):
    """Saves the global random generators (Python, NumPy, torch, CUDA) in every checkpoint and
    restores them on resume, so modules that draw from them (dropout, SpecAugment) continue as
    an uninterrupted run would. Stored as plain lists and tensors (``weights_only`` loading)."""

    def state_dict(self) -> dict:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state = {
            "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
            "numpy": [kind, torch.from_numpy(keys.copy()), pos, has_gauss, gauss],
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy(), pos, has_gauss, cached))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class AverageLastEpochs(L.Callback):
    """Averages the weights at the end of the last ``num`` training epochs (WeSpeaker's
    ``average_model.py --num 10`` over its last ten per-epoch models) and writes them as
    ``<dirpath>/<filename>.ckpt``, a full checkpoint (config and thresholds like any other);
    the system keeps the averaged weights, so testing and export use them
    (``test_ckpt: averaged`` tests that file).

    The running sum is part of the callback's checkpoint state: a run resumed from
    ``last.ckpt`` averages exactly the epochs an unbroken run would. Integer buffers (batch-norm
    counters) come from the last epoch. With fewer epochs than ``num`` every epoch counts.
    """

    def __init__(self, num: int = 10, dirpath: str = "checkpoints", filename: str = "averaged"):
        if num < 1:
            raise ConfigError(f"callbacks.average.num: at least 1 epoch, got {num}")
        self.num, self.dirpath, self.filename = num, dirpath, filename
        self.total: dict[str, torch.Tensor] | None = None
        self.epochs: list[int] = []

    @property
    def path(self) -> str:
        return f"{self.dirpath}/{self.filename}.ckpt"

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.max_epochs is None or trainer.max_epochs < 1:
            raise ConfigError(
                "callbacks.average: averaging the last epochs needs trainer.max_epochs"
            )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch < trainer.max_epochs - self.num:
            return
        weights = pl_module.state_dict()
        state = {k: v.detach().float().cpu() for k, v in weights.items() if v.is_floating_point()}
        if self.total is None:
            self.total = state
        else:
            for k, v in state.items():
                self.total[k] += v
        self.epochs.append(trainer.current_epoch)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.total is None:
            return
        current = pl_module.state_dict()
        averaged = {k: (self.total[k] / len(self.epochs)).to(current[k].dtype) for k in self.total}
        pl_module.load_state_dict({**current, **averaged})
        trainer.save_checkpoint(self.path, weights_only=False)
        log.info(
            "averaged epochs %s (%d) into %s",
            [e + 1 for e in self.epochs],
            len(self.epochs),
            self.path,
        )

    def state_dict(self) -> dict:
        return {"total": self.total, "epochs": list(self.epochs)}

    def load_state_dict(self, state: dict) -> None:
        self.total, self.epochs = state.get("total"), list(state.get("epochs", []))


class StopOnSignal(L.Callback):
    """SIGTERM (a scheduler's preemption) or Ctrl+C (SIGINT) during training stops it at the end
    of the current batch and writes the last checkpoint there, so ``ckpt_path=last`` continues
    as if nothing had happened; a second Ctrl+C stops at once, without a checkpoint.

    The stop itself is Lightning's: its handler sets ``trainer.received_sigterm`` (on every rank
    under DDP) and its loops raise ``SIGTERMException`` at the next safe point; Ctrl+C is routed
    to that handler. :attr:`signum` and :attr:`saved` tell the entry point what happened
    (``speakerid.runs.fit``).
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.saved: Path | None = None
        self._previous = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after Lightning installed its SIGTERM handler, which Ctrl+C is routed to
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        lightning_handler = signal.getsignal(signal.SIGTERM)
        if self.signum == signal.SIGINT or not callable(lightning_handler):
            raise KeyboardInterrupt  # the second Ctrl+C: now
        self.signum = signal.SIGINT
        lightning_handler(signal.SIGTERM, frame)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore()
        if isinstance(exception, KeyboardInterrupt):
            self.signum = signal.SIGINT
        elif isinstance(exception, SIGTERMException):
            self.signum = self.signum or signal.SIGTERM
            if trainer.state.fn == "fit" and not (trainer.sanity_checking or trainer.fast_dev_run):
                self.saved = self._save(trainer)

    def _restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    @staticmethod
    def _save(trainer: L.Trainer) -> Path:
        """Write ``last.ckpt`` where ``ckpt_path=last`` looks: the folder of the per-epoch
        (monitor-less) ModelCheckpoint, which then takes the file for its own on resuming."""
        saving = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)]
        plain = [c for c in saving if not c.monitor] or saving
        folder = plain[0].dirpath if plain and plain[0].dirpath else None
        path = Path(folder or Path(trainer.default_root_dir) / "checkpoints") / "last.ckpt"
        if plain and not plain[0].monitor and plain[0].filename == "last":
            plain[0].best_model_path = str(path)  # else a resumed run writes last-v1.ckpt
        trainer.save_checkpoint(path, weights_only=False)  # all of it: to resume
        return path
