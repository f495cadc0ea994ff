"""What every entry point shares: the config folder, user-error reporting, result tables."""

import functools
import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from speakerid.errors import ConfigError, SpeakerIdError

# conf/ lives at the project root, beside src/ (the package is installed in editable mode).
CONFIG_PATH = str(Path(__file__).resolve().parents[2] / "conf")
R = TypeVar("R")
log = logging.getLogger("speakerid")


def sqlite_url(path: str) -> str:
    """``${sqlite_url:PATH}`` in a config: an SQLite URL for PATH, its folder created (an Optuna
    study is opened before any run folder exists)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(path).resolve()}"


OmegaConf.register_new_resolver("sqlite_url", sqlite_url, replace=True)


def report_user_errors(task: Callable[..., R]) -> Callable[..., R]:
    """Turn a :class:`SpeakerIdError` into one clear line on stderr and exit status 2."""

    @functools.wraps(task)
    def wrapper(*args, **kwargs) -> R:
        try:
            return task(*args, **kwargs)
        except SpeakerIdError as err:
            log.debug("user error", exc_info=True)
            print(f"error: {err}", file=sys.stderr, flush=True)  # unwrapped, whatever the terminal
            sys.exit(2)

    return wrapper


def quiet_environment() -> None:
    """Offline-safe defaults: no hub downloads, W&B offline unless the user chose otherwise."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_SILENT", "true")


def print_results(title: str, results: Mapping[str, float]) -> None:
    """Print metrics as a table; rates (EER, minDCF) also as percentages."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in results.items():
        shown = (
            f"{value * 100:.2f} %"
            if key.endswith("eer")
            else f"{value:.4f}"
            if isinstance(value, float)
            else str(value)
        )
        table.add_row(key, shown)
    Console().print(table)


def tool_config(name: str, argv: list[str]) -> tuple[DictConfig, list[str]]:
    """Config and positional arguments of a small tool (``speakerid-verify a.wav b.wav k=v``).

    Arguments with ``=`` are Hydra overrides of ``conf/<name>.yaml`` (checked strictly); the rest
    are positional. No run folder is made: these tools print, they do not log.
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = [a for a in argv if "=" in a]
    positional = [a for a in argv if "=" not in a]
    try:
        with initialize_config_dir(CONFIG_PATH, version_base="1.3"):
            cfg = compose(name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(str(err).splitlines()[0]) from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"missing required setting(s): {', '.join(k + '=...' for k in missing)}")
    return cfg, positional
