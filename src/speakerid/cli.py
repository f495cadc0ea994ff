"""What every entry point shares: the config folder, user-error reporting, result tables."""

import functools
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import hydra
from hydra._internal import utils as hydra_utils  # its error report, made one line (hydra_entry)
from hydra.errors import (
    HydraException,
    InstantiationException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from rich.console import Console
from rich.table import Table

from speakerid.errors import STORAGE_ERRORS, ConfigError, SpeakerIdError

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
    """Turn a :class:`SpeakerIdError` into one clear line on stderr and exit status 2 (also one
    raised in a constructor that Hydra's ``instantiate`` wrapped)."""

    @functools.wraps(task)
    def wrapper(*args, **kwargs) -> R:
        try:
            return task(*args, **kwargs)
        except (SpeakerIdError, InstantiationException) as err:
            cause = err.__cause__ if isinstance(err, InstantiationException) else err
            if not isinstance(cause, SpeakerIdError):
                raise
            if _in_multirun():  # Hydra records the failed run (sweep.csv) and goes on; the sweep
                raise cause from None  # re-raises it at its end, as one line (_one_line_errors)
            log.debug("user error", exc_info=True)
            # print, not rich: unwrapped, whatever the terminal
            print(f"error: {cause}", file=sys.stderr, flush=True)
            sys.exit(2)

    return wrapper


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def hydra_entry(config_name: str) -> Callable[[Callable[[DictConfig], R]], Callable[[], R]]:
    """``@hydra.main`` for ``conf/<config_name>.yaml`` with the platform's error reporting: user
    errors raised by the task, and Hydra's own composition and override errors (an unknown
    choice, a malformed override, a key that does not exist), are one line and exit status 2.
    ``HYDRA_FULL_ERROR=1`` shows Hydra's full report instead."""

    def decorate(task: Callable[[DictConfig], R]) -> Callable[[], R]:
        hydra_main = hydra.main(
            version_base="1.3", config_path=CONFIG_PATH, config_name=config_name
        )(report_user_errors(task))

        @functools.wraps(task)
        def main() -> R:
            original = hydra_utils.run_and_report
            hydra_utils.run_and_report = functools.partial(_one_line_errors, original)
            try:
                return hydra_main()
            finally:
                hydra_utils.run_and_report = original

        return main

    return decorate


def _one_line_errors(report: Callable[[Callable[[], R]], R], func: Callable[[], R]) -> R:
    """Hydra's ``run_and_report`` around ``func``, with configuration errors as one line."""

    def guarded() -> R:
        try:
            return func()
        except (HydraException, OmegaConfBaseException) as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {config_error_line(err)}", file=sys.stderr, flush=True)
            sys.exit(2)
        except SpeakerIdError as err:  # a multirun's failed run, re-raised by the sweeper
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)
        except OSError as err:  # Hydra making or writing the run folder: full, read-only
            if err.errno not in STORAGE_ERRORS or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {err.filename or ''}: {err.strerror}", file=sys.stderr, flush=True)
            sys.exit(2)
        except ValueError as err:  # ``group=null`` on the command line
            if not str(err).startswith(NULL_GROUP):
                raise
            print(f"error: {str(err).strip()}{NULL_GROUP_HINT}", file=sys.stderr, flush=True)
            sys.exit(2)

    return report(guarded)


# Hydra's message for ``logger=null`` (a group cannot be set to null from the command line)
NULL_GROUP = "Config group override must be a string or a list"
NULL_GROUP_HINT = "; to choose no config of a group, remove it or give none: ~logger, logger=[]"


QUOTING_HINT = (
    "; a value holding , [ ] { } = ' or spaces (a path, often) must be quoted for Hydra, and the "
    "quotes kept from the shell: \"key='/data/a,b=c.wav'\""
)


def config_error_line(err: Exception) -> str:
    """One line for a Hydra / OmegaConf error; an unknown choice names the group it belongs to
    when another config group has a file of that name, a malformed override says how to quote a
    path with Hydra's special characters, and an override of a missing key how to add it (+)."""
    line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, OverrideParseException) or line.startswith("Ambiguous value"):
        line += QUOTING_HINT
    line += _prefix_hint(str(err))
    if isinstance(err, MissingConfigException) and err.missing_cfg_file:
        group, _, choice = err.missing_cfg_file.rpartition("/")
        options = f" (choices: {', '.join(err.options)})" if err.options else ""
        line = f"{group}={choice}: no such choice in conf/{group}/{options}"
        elsewhere = sorted(
            p.parent.relative_to(CONFIG_PATH).as_posix()
            for p in Path(CONFIG_PATH).rglob(f"{choice}.yaml")
            if p.parent != Path(CONFIG_PATH)
        )
        if elsewhere:
            line += f"; '{choice}' is a choice of {', '.join(elsewhere)}"
            line += ENTRY_HINTS.get(elsewhere[0], "")
    return line


def _prefix_hint(message: str) -> str:
    """Hydra's remedy for an override of a key the config lacks (``+key=value`` adds it) or an
    addition of one it has (without ``+``, or ``++``), which its message gives on later lines."""
    added = re.search(r"^To append to your config use (\+\S+)", message, re.MULTILINE)
    if added:
        return f" The config has no such key (a typo?); to add a key, prefix it with +: {added[1]}"
    plain = re.search(r"^Either remove \+ prefix: '(\S+)'", message, re.MULTILINE)
    if plain:
        return f" To set it, drop the +: {plain[1]} (++ adds or overrides)"
    return ""


# Groups that belong to one entry point, named in the hint for a choice made in the wrong place.
ENTRY_HINTS = {
    "enhance_loss": " (embedding enhancement: speakerid-enhance enhance_loss=...)",
    "model/enhancer": " (embedding enhancement: speakerid-enhance)",
}


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

    # an existing file or folder is positional even with '=' in its name
    overrides = [a for a in argv if "=" in a and not Path(a).exists()]
    positional = [a for a in argv if a not in overrides]
    try:
        with initialize_config_dir(CONFIG_PATH, version_base="1.3"):
            cfg = compose(name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(config_error_line(err)) from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"missing required setting(s): {', '.join(k + '=...' for k in missing)}")
    return cfg, positional
