"""A multirun's results table: Hydra callbacks that make the sweep folder resolvable and write
``sweep.csv`` and ``sweep.md`` there, one row per run (its swept values, the optimized metric,
test EER/minDCF, status and error), the best run marked; a W&B table when W&B logs the runs.

Each run leaves ``job.json`` (how it ended) beside its ``metrics.json``; the table is rebuilt
from the run folders after every run and at the end of the multirun, so a sweep that stops on a
failed run (Hydra re-raises it) still has its table, and a run that died without an ending
(killed, out of memory, a SLURM time limit) shows as ``unfinished``: never silently missing.
"""

import csv
import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from speakerid.cli import config_error_line
from speakerid.errors import SpeakerIdError
from speakerid.utils.io import atomic_open, write_json

log = logging.getLogger(__name__)

JOB_FILE = "job.json"  # in each run folder: status, the returned objective, the error
TEST_METRICS = ("test/eer", "test/min_dcf")
# a run folder without job.json: still running, or its process died (out of memory, a time limit)
UNFINISHED = {"status": "unfinished", "error": "no ending recorded: still running, or killed"}


@dataclass(frozen=True)
class Sweep:
    """What the table needs to know of a multirun.

    Args:
        folder: the sweep folder (``hydra.sweep.dir``).
        metric: the optimized metric (``optimized_metric``), if the task has one.
        maximize: whether the best run has the largest metric (the sweeper's ``direction``).
        params: the keys the sweeper itself chooses (an Optuna search space).
    """

    folder: Path
    metric: str | None = None
    maximize: bool = False
    params: tuple[str, ...] = ()

    @classmethod
    def of(cls, config: DictConfig) -> "Sweep":
        """The sweep of a multirun's (or one of its jobs') full config."""
        sweeper = config.hydra.sweeper
        direction = sweeper.get("direction") or "minimize"
        if OmegaConf.is_list(direction):  # several objectives: the table ranks by the first
            direction = direction[0]
        return cls(
            folder=Path(str(config.hydra.sweep.dir)),
            metric=config.get("optimized_metric"),
            maximize=str(direction).lower().endswith("maximize"),
            params=tuple(sweeper.get("params") or ()),
        )


@dataclass(frozen=True)
class Run:
    """One run folder of a sweep, as found on disk."""

    name: str
    overrides: tuple[str, ...]
    metrics: dict[str, float]
    ending: dict[str, Any] | None  # job.json; None: the run has not ended (or died)


class MultirunConfig(Callback):
    """Hydra callback: ``${hydra:...}`` resolvable while the sweeper sets up, as it is before a
    single run. Hydra sets its config before a run resolves ``hydra.run.dir``, but not before a
    sweeper resolves ``hydra.sweep.dir`` (``paths.log_dir``, rooted at ``${hydra:runtime.cwd}``)
    or its own settings (an Optuna storage under ``paths.log_dir``)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:  # Hydra's signature
        HydraConfig.instance().set_config(config)


class SweepTable(Callback):
    """Hydra callback: ``sweep.csv`` and ``sweep.md`` in the sweep folder, after every run and at
    the end of the multirun; at the end also a W&B table when W&B is among the loggers."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        write_json(Path(config.hydra.runtime.output_dir) / JOB_FILE, job_ending(job_return))
        write_table(Sweep.of(config))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Sweep.of(config)
        rows = write_table(sweep)
        log.info("sweep table: %s (%d runs)", sweep.folder / "sweep.md", len(rows))
        log_to_wandb(config, sweep, rows)


def job_ending(job_return: JobReturn) -> dict[str, Any]:
    """How a job ended: ``ok`` with its returned objective, or ``failed`` with a one-line error."""
    value = job_return._return_value  # the public property re-raises a failed job's exception
    if job_return.status == JobStatus.COMPLETED:
        objective = float(value) if isinstance(value, int | float) else None
        return {"status": "ok", "objective": objective, "error": None}
    return {"status": "failed", "objective": None, "error": error_line(value)}


def error_line(err: BaseException | None) -> str:
    """One line for a run's error: a user error's own message, otherwise the exception's type
    and the first line of its message (Hydra and OmegaConf errors as the entry points say them)."""
    if err is None:
        return "unknown error"
    if isinstance(err, HydraException | OmegaConfBaseException):
        return config_error_line(err)
    first = (str(err).strip().splitlines() or [""])[0]
    return first if isinstance(err, SpeakerIdError) else f"{type(err).__name__}: {first}".rstrip()


def find_runs(folder: Path) -> list[Run]:
    """Every run folder under ``folder`` (one with ``.hydra/overrides.yaml``), in job order."""
    found = []
    for root, dirs, _ in os.walk(folder):
        overrides = Path(root) / ".hydra" / "overrides.yaml"
        if not overrides.is_file():
            continue
        dirs.clear()  # a run folder holds no other runs: do not walk its checkpoints and logs
        found.append(_read_run(folder, Path(root), overrides))
    return sorted(found, key=lambda r: [int(p) if p.isdigit() else p for p in Path(r.name).parts])


def _read_run(sweep_folder: Path, folder: Path, overrides: Path) -> Run:
    """One run folder's overrides, metrics and ending (each file may be missing)."""
    metrics = _read_json(folder / "metrics.json") or {}
    return Run(
        name=folder.relative_to(sweep_folder).as_posix(),
        overrides=tuple(str(o) for o in (OmegaConf.load(overrides) or [])),
        metrics={k: v for k, v in metrics.items() if isinstance(v, int | float)},
        ending=_read_json(folder / JOB_FILE),
    )


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # not written (yet), or cut short by a killed job
        return None


def override_key(override: str) -> str:
    """``loss.margin`` of ``loss.margin=0.2``, ``+trainer.x=1``, ``~callbacks.early_stopping``."""
    return override.split("=", 1)[0].lstrip("+~")


def swept_keys(sweep: Sweep, runs: Sequence[Run]) -> list[str]:
    """The keys that tell the runs apart: the sweeper's own parameters, and every override that
    is not the same in all runs (in order of first appearance)."""
    keys = dict.fromkeys(override_key(o) for run in runs for o in run.overrides)
    given = [{override_key(o): o for o in run.overrides} for run in runs]
    varying = [k for k in keys if len({g.get(k) for g in given}) > 1]
    return list(dict.fromkeys([*sweep.params, *varying]))


def objective(sweep: Sweep, run: Run) -> float | None:
    """The run's optimized metric: what it returned to the sweeper, else its ``metrics.json``."""
    returned = (run.ending or {}).get("objective")
    value = returned if returned is not None else run.metrics.get(sweep.metric or "")
    return float(value) if value is not None and math.isfinite(value) else None


def best_run(sweep: Sweep, runs: Sequence[Run]) -> Run | None:
    """The finished run with the best objective (lowest, or highest when maximizing)."""
    scored = [(objective(sweep, r), r) for r in runs if (r.ending or {}).get("status") == "ok"]
    scored = [(v, r) for v, r in scored if v is not None]
    if not scored:
        return None
    pick = max if sweep.maximize else min
    return pick(scored, key=lambda pair: pair[0])[1]


def table_rows(sweep: Sweep, runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One row per run: name, status, best mark, swept values, metrics, error, all overrides."""
    keys, best = swept_keys(sweep, runs), best_run(sweep, runs)
    tested = [m for m in TEST_METRICS if any(m in r.metrics for r in runs)]  # not eval's runs
    metrics = list(dict.fromkeys([m for m in (sweep.metric, *tested) if m]))
    rows = []
    for run in runs:
        given = {override_key(o): o.split("=", 1)[1] if "=" in o else o for o in run.overrides}
        ending = run.ending or UNFINISHED
        row: dict[str, Any] = {"run": run.name, "status": ending["status"]}
        row["best"] = "best" if run is best else ""
        row.update({k: given.get(k, "") for k in keys})
        row.update({m: run.metrics.get(m) for m in metrics})
        if sweep.metric:
            row[sweep.metric] = objective(sweep, run)
        row["error"] = ending.get("error") or ""
        row["overrides"] = " ".join(run.overrides)
        rows.append(row)
    return rows


def write_table(sweep: Sweep) -> list[dict[str, Any]]:
    """Write ``sweep.csv`` and ``sweep.md`` from the run folders; return the rows."""
    runs = find_runs(sweep.folder)
    rows = table_rows(sweep, runs)
    columns = list(rows[0]) if rows else ["run", "status", "best", "error", "overrides"]
    with atomic_open(sweep.folder / "sweep.csv", "w") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    with atomic_open(sweep.folder / "sweep.md", "w") as f:
        f.write(markdown(sweep, runs, rows, columns))
    return rows


def markdown(sweep: Sweep, runs: Sequence[Run], rows: Sequence[dict], columns: list[str]) -> str:
    """The table for reading: a summary line, what every run shares, one row per run."""
    shown = [c for c in columns if c != "overrides"]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "unfinished")}
    lines = [f"# Sweep {sweep.folder.name}", ""]
    summary = f"{len(rows)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    best = next((r for r in rows if r["best"]), None)
    if best and sweep.metric:
        goal = "maximized" if sweep.maximize else "minimized"
        summary += f"; best: run {best['run']} ({sweep.metric} {best[sweep.metric]:.4f}, {goal})"
    lines += [summary, ""]
    shared = [o for o in (runs[0].overrides if runs else ()) if all(o in r.overrides for r in runs)]
    if shared and len(runs) > 1:
        lines += ["Every run: `" + " ".join(shared) + "`", ""]
    lines.append("| " + " | ".join(shown) + " |")
    lines.append("|" + " --- |" * len(shown))
    for row in rows:
        cells = [_cell(row[c]) for c in shown]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    """A metric to 4 decimals, a swept number to 4 significant digits (an Optuna draw has 17;
    sweep.csv keeps them all), anything else as it is."""
    if isinstance(value, float):
        return f"{value:.4f}"
    text = "" if value is None else str(value)
    if re.fullmatch(r"-?\d*\.\d{5,}(e-?\d+)?", text):
        return f"{float(text):.4g}"
    return text.replace("|", "\\|")


def wandb_config(config: DictConfig) -> DictConfig | None:
    """The W&B logger's config among the run's loggers, if W&B is one of them."""
    loggers = config.get("logger") or {}
    for node in loggers.values() if isinstance(loggers, DictConfig) else ():
        if isinstance(node, DictConfig) and "wandb" in str(node.get("_target_", "")).lower():
            return node
    return None


def log_to_wandb(config: DictConfig, sweep: Sweep, rows: Sequence[dict[str, Any]]) -> None:
    """The table as a W&B run of the sweep's group (``<task>-<sweep folder>``, the group every
    run of the multirun logs to), with the best run's values in its summary."""
    node = wandb_config(config)
    if node is None or not rows:
        return
    from hydra.utils import instantiate

    from speakerid.utils.loggers import close_loggers

    name = f"{config.get('task_name') or 'run'}-sweep"
    logger = instantiate(node, save_dir=str(sweep.folder), name=name, job_type="sweep")
    columns = list(rows[0])
    # None, not "", where a run has no value: W&B types each column by its values
    logger.log_table(key="sweep", columns=columns, data=[[r[c] for c in columns] for r in rows])
    best = next((r for r in rows if r["best"]), None)
    if best:
        summary = {f"best/{k}": v for k, v in best.items() if v not in (None, "")}
        logger.experiment.summary.update(summary)
    log.info("sweep table logged to W&B: run %s, group %s", name, logger.experiment.group)
    close_loggers([logger])
