"""A multirun's results table: one row per run from the run folders (ok, failed with its error,
unfinished), the best run marked; the W&B table in the sweep's group; a real sweep with a failing
run from the command line. ``make sweep`` and ``make search`` leave their tables in
test_documented_commands.py."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf
from tests.conftest import TINY_CORPUS, TINY_DATA, TINY_MODEL

from speakerid.cli import CONFIG_PATH
from speakerid.errors import ConfigError
from speakerid.sweep import JOB_FILE, Sweep, SweepTable, job_ending, write_table

BIN = Path(sys.executable).parent
SHARED = ["loss.scale=20", "trainer.max_epochs=1"]


def _run_folder(sweep: Path, name: str, margin: str, val_eer: float | None, ending: dict | None):
    """A run folder as a multirun leaves it: overrides, metrics (if it trained), job.json (if it
    ended)."""
    folder = sweep / name
    (folder / ".hydra").mkdir(parents=True)
    OmegaConf.save(
        OmegaConf.create([f"loss.margin={margin}", *SHARED]), folder / ".hydra/overrides.yaml"
    )
    if val_eer is not None:
        metrics = {"val/eer": val_eer, "test/eer": val_eer + 0.05, "test/min_dcf": 0.5}
        (folder / "metrics.json").write_text(json.dumps(metrics))
    if ending is not None:
        (folder / JOB_FILE).write_text(json.dumps(ending))


def _four_runs(sweep: Path) -> None:
    _run_folder(sweep, "0", "0.1", 0.20, {"status": "ok", "objective": 0.20, "error": None})
    _run_folder(sweep, "10", "0.4123456789", None, None)  # still running, or killed
    _run_folder(sweep, "1", "0.2", 0.10, {"status": "ok", "objective": 0.10, "error": None})
    failed = {"status": "failed", "objective": None, "error": "RuntimeError: out of memory"}
    _run_folder(sweep, "2", "0.3", None, failed)


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def test_one_row_per_run_in_job_order_the_best_marked(tmp_path: Path) -> None:
    _four_runs(tmp_path)
    write_table(Sweep(tmp_path, metric="val/eer"))
    rows = _rows(tmp_path / "sweep.csv")
    assert [r["run"] for r in rows] == ["0", "1", "2", "10"]
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "unfinished"]
    assert [r["best"] for r in rows] == ["", "best", "", ""]
    assert [r["loss.margin"] for r in rows] == ["0.1", "0.2", "0.3", "0.4123456789"]
    assert "loss.scale" not in rows[0]  # the same in every run: not a column of its own
    assert float(rows[1]["val/eer"]) == 0.10 and float(rows[1]["test/eer"]) == pytest.approx(0.15)
    assert rows[2]["error"] == "RuntimeError: out of memory" and rows[2]["val/eer"] == ""
    assert rows[3]["error"].startswith("no ending recorded")
    assert rows[0]["overrides"] == " ".join(["loss.margin=0.1", *SHARED])
    md = (tmp_path / "sweep.md").read_text()
    assert "4 runs: 2 ok, 1 failed, 1 unfinished; best: run 1 (val/eer 0.1000, minimized)" in md
    assert "Every run: `loss.scale=20 trainer.max_epochs=1`" in md
    assert "| 2 | failed |  | 0.3 |  |  |  | RuntimeError: out of memory |" in md
    assert "| 10 | unfinished |  | 0.4123 |" in md  # a long draw shortened, in the CSV whole


def test_a_maximized_metric_and_the_sweepers_own_parameters(tmp_path: Path) -> None:
    _four_runs(tmp_path)
    write_table(Sweep(tmp_path, metric="val/eer", maximize=True, params=("loss.scale",)))
    rows = _rows(tmp_path / "sweep.csv")
    assert [r["best"] for r in rows] == ["best", "", "", ""]
    assert [r["loss.scale"] for r in rows] == ["20"] * 4  # a searched key is always a column


def test_a_sweep_without_metrics_has_no_metric_columns(tmp_path: Path) -> None:
    """speakerid-eval -m: no optimized metric, no metrics.json in its run folders."""
    for n in ("0", "1"):
        _run_folder(tmp_path, n, f"0.{n}", None, {"status": "ok", "objective": None, "error": None})
    write_table(Sweep(tmp_path))
    (header, *_) = (tmp_path / "sweep.csv").read_text().splitlines()
    assert header == "run,status,best,loss.margin,error,overrides"


def test_how_a_job_ended() -> None:
    ok = JobReturn(status=JobStatus.COMPLETED, _return_value=0.25)
    assert job_ending(ok) == {"status": "ok", "objective": 0.25, "error": None}
    user = JobReturn(status=JobStatus.FAILED, _return_value=ConfigError("test_ckpt: bad"))
    assert job_ending(user)["error"] == "test_ckpt: bad"
    crash = JobReturn(status=JobStatus.FAILED, _return_value=RuntimeError("boom\ntraceback"))
    assert job_ending(crash) == {
        "status": "failed",
        "objective": None,
        "error": "RuntimeError: boom",
    }


def _full_config(*overrides: str) -> DictConfig:
    """The train config with its ``hydra`` node, as a Hydra callback receives it."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(CONFIG_PATH, version_base="1.3"):
        cfg = compose("train", list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # as MultirunConfig does at a multirun's start
    return cfg


def test_a_single_run_writes_no_table(tmp_path: Path) -> None:
    cfg = _full_config(f"hydra.run.dir={tmp_path}/run", "hydra.runtime.output_dir=" + str(tmp_path))
    SweepTable().on_job_end(cfg, JobReturn(status=JobStatus.COMPLETED, _return_value=0.1))
    assert not any(tmp_path.rglob("*"))


@pytest.mark.slow  # a W&B run (offline): its service process starts
def test_the_table_goes_to_wandb_in_the_sweeps_group(tmp_path: Path, monkeypatch) -> None:
    from speakerid.utils import loggers

    sweep_dir = f"hydra.sweep.dir={tmp_path}/2026-12-01_10-00-00"
    job = "hydra.job.name=train"  # as speakerid-train's multirun names it
    cfg = _full_config("hydra.mode=MULTIRUN", sweep_dir, job, "logger=[csv,wandb]")
    folder = tmp_path / "2026-12-01_10-00-00"
    _four_runs(folder)
    logged = []
    close = loggers.close_loggers
    monkeypatch.setattr(loggers, "close_loggers", lambda ls: logged.extend(ls) or close(ls))
    SweepTable().on_multirun_end(cfg)
    (logger,) = logged
    assert logger._wandb_init["group"] == "train-2026-12-01_10-00-00"  # the runs' group
    assert logger._wandb_init["job_type"] == "sweep"
    (table,) = folder.glob("wandb/offline-run-*/files/media/table/sweep_*.table.json")
    logged_table = json.loads(table.read_text())
    assert len(logged_table["data"]) == 4 and "loss.margin" in logged_table["columns"]
    assert len(_rows(folder / "sweep.csv")) == 4


@pytest.mark.slow
def test_a_failed_run_is_a_row_with_its_error(tiny_data_dir: Path, tmp_path: Path) -> None:
    """A two-run sweep from the command line in the default sweep folder (under SPEAKERID_ROOT),
    one run refused: both run, the sweep ends with the refusal (exit 2), the table has both."""
    tiny = [f"data.corpus.{k}={v}" for k, v in TINY_CORPUS.items()]
    tiny += [f"data.{k}={v}" for k, v in TINY_DATA.items() if not isinstance(v, dict)]
    tiny += [f"{k}={v}" for k, v in TINY_MODEL.items()]
    run = subprocess.run(
        [
            BIN / "speakerid-train",
            "-m",
            "test_ckpt=last,lastt",
            f"paths.data_dir={tiny_data_dir}",
            *tiny,
            "trainer.max_epochs=1",
            "callbacks.rich_progress_bar=null",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "SPEAKERID_ROOT": str(tmp_path), "WANDB_MODE": "offline"},
    )
    refusal = "test_ckpt must be best, last or averaged, got 'lastt'"
    assert run.returncode == 2, run.stderr[-2000:]
    assert run.stderr.strip().splitlines()[-1] == f"error: {refusal}"
    (sweep,) = (tmp_path / "logs/train/multiruns").iterdir()
    rows = _rows(sweep / "sweep.csv")
    assert [(r["run"], r["status"], r["best"]) for r in rows] == [
        ("0", "ok", "best"),
        ("1", "failed", ""),
    ]
    assert rows[1]["error"] == refusal and rows[1]["test_ckpt"] == "lastt"
    assert 0 <= float(rows[0]["test/eer"]) <= 1 and rows[0]["test/min_dcf"]
