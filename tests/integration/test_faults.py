"""A full disk or a read-only folder met by a training run: one line naming the file, exit 2,
the checkpoints written so far intact; a run without loggers."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from lightning.pytorch.plugins.io import TorchCheckpointIO
from tests.conftest import TINY_MODEL, compose_config, tiny_overrides

from speakerid import train as train_entry
from speakerid.data.embedding_store import StoreWriter
from speakerid.errors import ConfigError
from speakerid.inference import load_checkpoint
from speakerid.runs import make_trainer, storage_errors


def _fail_from_the_second_save(monkeypatch, code: int) -> None:
    original = TorchCheckpointIO.save_checkpoint
    calls = []

    def save(self, checkpoint, path, storage_options=None) -> None:
        calls.append(path)
        if len(calls) > 1:  # as fsspec reports it: its temporary file, then ours
            raise OSError(code, os.strerror(code), "/tmp/tmpxyz", str(path))
        original(self, checkpoint, path, storage_options)

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", save)


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_the_last_checkpoint_stays(
    tiny_data_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    run = tmp_path / "run"
    overrides = [*tiny_overrides(tiny_data_dir, run), f"hydra.run.dir={run}"]
    overrides += [f"{k}={v}" for k, v in TINY_MODEL.items()]
    overrides += [
        "trainer.max_epochs=1",
        "callbacks.rich_progress_bar=null",
        "trainer.enable_progress_bar=false",
        "callbacks.last_checkpoint.every_n_train_steps=2",
        "callbacks.last_checkpoint.every_n_epochs=null",
    ]
    _fail_from_the_second_save(monkeypatch, errno.ENOSPC)
    GlobalHydra.instance().clear()
    monkeypatch.setattr(sys, "argv", ["speakerid-train", *overrides])
    with pytest.raises(SystemExit) as stopped:
        train_entry.main()
    last = run / "checkpoints" / "last.ckpt"
    assert stopped.value.code == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
    assert lines == [
        f"error: {last}: No space left on device; {last} is intact: fix that, then continue "
        f"with hydra.run.dir={run} ckpt_path=last"
    ]
    assert load_checkpoint(last)["global_step"] == 2  # the one before, complete
    assert not [p for p in last.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_read_only_folder_before_any_checkpoint_says_so(tmp_path: Path) -> None:
    cfg = compose_config("train", [f"paths.output_dir={tmp_path}"])
    folder = tmp_path / "csv"
    with pytest.raises(ConfigError) as refused, storage_errors(cfg):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(folder))
    assert (
        str(refused.value)
        == f"{folder}: Read-only file system; no last checkpoint was written yet: nothing to resume"
    )
    with pytest.raises(OSError, match="Bad file"), storage_errors(cfg):  # not the user's to fix
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))


@pytest.mark.parametrize("override", ["~logger", "logger=[]"])
def test_a_run_without_loggers(override: str, tiny_data_dir: Path, tmp_path: Path) -> None:
    cfg = compose_config("train", [*tiny_overrides(tiny_data_dir, tmp_path), override])
    trainer, loggers = make_trainer(cfg)
    assert loggers == [] and trainer.loggers == []


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MB tmpfs (needs root and mount; skipped elsewhere)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)]).returncode:
        pytest.skip("no tmpfs mount here (needs root)")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_store_larger_than_the_disk_is_refused_when_created(small_disk: Path) -> None:
    index = [(f"s{i % 2}/{i}", f"s{i % 2}", "-") for i in range(1000)]  # 7.7 MB of float32
    with pytest.raises(ConfigError, match=r"store.partial: No space left on device: .* 7\.68 MB"):
        StoreWriter(small_disk / "store", index, 10, 192, {"source": "x"}, shard_size=100)
    assert list(small_disk.iterdir()) == []
