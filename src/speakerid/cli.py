"""What every entry point shares: the config folder, user-error reporting, result tables."""

import functools
import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from speakerid.errors import SpeakerIdError

# conf/ lives at the project root, beside src/ (the package is installed in editable mode).
CONFIG_PATH = str(Path(__file__).resolve().parents[2] / "conf")
R = TypeVar("R")
log = logging.getLogger("speakerid")


def report_user_errors(task: Callable[[DictConfig], R]) -> Callable[[DictConfig], R]:
    """Turn a :class:`SpeakerIdError` into one clear line on stderr and exit status 2."""

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> R:
        try:
            return task(cfg)
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
