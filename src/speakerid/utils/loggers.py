"""Logger helpers: W&B that picks online/offline by itself and groups multiruns, the code
version every run records, and closing runs (W&B keeps one global run per process, so a second run
in the same process — a basic-launcher multirun, a test session — would log into the first)."""

import functools
import logging
import os
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger

log = logging.getLogger(__name__)


def close_loggers(loggers: Sequence[Logger]) -> None:
    """Flush every logger and finish the W&B runs they opened."""
    for logger in loggers:
        logger.save()
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger._experiment.finish()


def wandb_configured() -> bool:
    """Whether a W&B key is at hand (``WANDB_API_KEY`` or a ``wandb login`` netrc entry)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def wandb_reachable(timeout: float = 3.0) -> bool:
    """Whether the W&B server answers a TCP connection within ``timeout`` seconds."""
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
    try:
        socket.create_connection((host.split(":")[0], 443), timeout=timeout).close()
        return True
    except OSError:
        log.warning("W&B server %s not reachable: logging offline (`wandb sync` later)", host)
        return False


def multirun_group() -> str | None:
    """The Hydra multirun's folder name when running inside one (one W&B group per sweep)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return f"{HydraConfig.get().job.name}-{Path(HydraConfig.get().sweep.dir).name}"


_WANDB_DIRS = ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR")
_USER_SET = {name for name in _WANDB_DIRS if name in os.environ}  # the user's own choices stay


def _keep_wandb_files_in(folder: Path) -> None:
    """Point W&B's cache, config, data and artifact folders into the run folder (by default they
    are under ``~/.cache``, ``~/.config`` and ``~/.local``), unless the user chose them."""
    for name in _WANDB_DIRS:
        if name not in _USER_SET:
            os.environ[name] = str(
                folder / name.removeprefix("WANDB_").removesuffix("_DIR").lower()
            )


def wandb_logger(offline: bool | str = "auto", group: str | None = "auto", **kwargs) -> WandbLogger:
    """A WandbLogger that never hangs without a network.

    Args:
        offline: ``auto`` streams when a key is configured (:func:`wandb_configured`) and logs
            offline otherwise (``wandb sync`` uploads later); True/False force it.
        group: ``auto`` puts every run of a Hydra multirun in one group named after the sweep.
        kwargs: the rest of :class:`~lightning.pytorch.loggers.WandbLogger`'s arguments.
    """
    _keep_wandb_files_in(Path(kwargs.get("save_dir") or ".") / "wandb")
    if offline == "auto":
        offline = not wandb_configured() or not wandb_reachable()
    if group == "auto":
        group = multirun_group()
    return WandbLogger(offline=bool(offline), group=group, **kwargs)


def code_version() -> dict:
    """The package version and, in a git checkout, the commit and whether it has local changes."""
    from speakerid import __version__

    root = Path(__file__).resolve().parents[3]
    info: dict = {"version": __version__}
    try:
        run = functools.partial(subprocess.run, cwd=root, capture_output=True, text=True, timeout=5)
        commit = run(["git", "rev-parse", "HEAD"])
        if commit.returncode == 0:
            info["git_commit"] = commit.stdout.strip()
            info["git_dirty"] = bool(run(["git", "status", "--porcelain"]).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def csv_logger(save_dir: str, name: str = "csv", version: str = "", **kwargs) -> CSVLogger:
    """Lightning's CSVLogger, except that a resumed run keeps the earlier ``metrics.csv``
    (renamed ``metrics.1.csv``, ``metrics.2.csv``, ...) instead of having it deleted."""
    folder = Path(save_dir) / name / str(version)
    if (folder / "metrics.csv").is_file():
        n = 1
        while (folder / f"metrics.{n}.csv").exists():
            n += 1
        (folder / "metrics.csv").rename(folder / f"metrics.{n}.csv")
    return CSVLogger(save_dir, name=name, version=version, **kwargs)
