"""Killed mid-epoch and resumed from last.ckpt, a run ends exactly as an uninterrupted one."""

from pathlib import Path

import lightning as L
import pytest
import torch
import wandb
from tests.conftest import tiny_train_config

from speakerid.data.samplers import ResumableLoader, ResumableSampler
from speakerid.data.shard_writer import write_shards
from speakerid.inference import load_checkpoint
from speakerid.train import train

EVERY_2_STEPS = [
    "trainer.max_epochs=2",
    "callbacks.last_checkpoint.every_n_train_steps=2",
    "callbacks.last_checkpoint.every_n_epochs=null",
    "data.num_workers=2",
    "+logger.csv.flush_logs_every_n_steps=1",
    "trainer.log_every_n_steps=1",
]


class Killed(Exception):
    pass


class KillAtStep(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise Killed(f"killed at step {self.step}")


def _weights(path: Path) -> dict:
    return load_checkpoint(path)["state_dict"]


def test_resume_mid_epoch_matches_an_uninterrupted_run(
    tiny_data_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    full = train(tiny_train_config(tiny_data_dir, tmp_path / "full", *EVERY_2_STEPS))

    run = tmp_path / "killed"
    cfg = tiny_train_config(tiny_data_dir, run, *EVERY_2_STEPS, "logger=[csv,wandb]")
    original = L.Trainer.__init__

    def with_killer(self, *args, callbacks=(), **kwargs):
        original(self, *args, callbacks=[*callbacks, KillAtStep(5)], **kwargs)

    monkeypatch.setattr(L.Trainer, "__init__", with_killer)
    with pytest.raises(Killed):
        train(cfg)
    monkeypatch.undo()
    wandb.finish()  # the process would have died with the run
    saved = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert saved["global_step"] == 4 and saved["epoch"] == 0  # mid-epoch (7 batches per epoch)

    resumed = train(
        tiny_train_config(
            tiny_data_dir,
            run,
            *EVERY_2_STEPS,
            "logger=[csv,wandb]",
            "ckpt_path=${paths.output_dir}/checkpoints/last.ckpt",
        )
    )
    for key in ("val/eer", "val/min_dcf", "test/eer", "test/min_dcf", "train/loss"):
        assert resumed[key] == full[key], key  # exactly
    # the resumed part logs to the same W&B run; the CSV log of the killed part is kept
    wandb_id = load_checkpoint(run / "checkpoints" / "last.ckpt")["speakerid"]["wandb_id"]
    assert wandb_id == saved["speakerid"]["wandb_id"]
    # (both parts write offline-run-<time>-<id>; within one second they share the folder)
    assert list((run / "wandb").glob(f"offline-run-*-{wandb_id}"))
    assert (run / "csv" / "metrics.1.csv").is_file() and (run / "csv" / "metrics.csv").is_file()
    for name, value in _weights(tmp_path / "full" / "checkpoints" / "last.ckpt").items():
        torch.testing.assert_close(
            _weights(run / "checkpoints" / "last.ckpt")[name], value, rtol=0, atol=0
        )


@pytest.mark.parametrize("mode", ["epoch", "infinite"])
def test_resume_mid_epoch_from_shards_matches_an_uninterrupted_run(
    tiny_data_dir: Path, tiny_corpus, tmp_path: Path, monkeypatch, mode: str
) -> None:
    write_shards(tiny_corpus.manifest(), tmp_path / "shards", shard_size=7)
    settings = [
        *EVERY_2_STEPS,
        f"data.shards.dir={tmp_path / 'shards'}",
        f"data.shards.mode={mode}",
    ]
    if mode == "infinite":
        settings += ["trainer.max_steps=8", "trainer.val_check_interval=3"]
    full = train(tiny_train_config(tiny_data_dir, tmp_path / "full", *settings))
    run = tmp_path / "killed"
    original = L.Trainer.__init__

    def with_killer(self, *args, callbacks=(), **kwargs):
        original(self, *args, callbacks=[*callbacks, KillAtStep(5)], **kwargs)

    monkeypatch.setattr(L.Trainer, "__init__", with_killer)
    with pytest.raises(Killed):
        train(tiny_train_config(tiny_data_dir, run, *settings))
    monkeypatch.undo()
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 4
    resume = "ckpt_path=${paths.output_dir}/checkpoints/last.ckpt"
    resumed = train(tiny_train_config(tiny_data_dir, run, *settings, resume))
    assert resumed["test/eer"] == full["test/eer"]
    for name, value in _weights(tmp_path / "full" / "checkpoints" / "last.ckpt").items():
        torch.testing.assert_close(
            _weights(run / "checkpoints" / "last.ckpt")[name], value, rtol=0, atol=0
        )


class _Items:
    """Returns the (index, item seed) pairs it is asked for."""

    def __getitem__(self, item: tuple[int, int]) -> tuple[int, int]:
        return item


def test_sampler_state_round_trip() -> None:
    sampler = ResumableSampler(10, seed=3)
    loader = ResumableLoader(_Items(), sampler, batch_size=3, collate_fn=list)
    first = [batch for batch in loader]
    loader.finished_batches = 2
    state = loader.position()
    assert state == {"epoch": 0, "batches": 2}
    again = ResumableLoader(_Items(), ResumableSampler(10, seed=3), 3, collate_fn=list)
    again.resume_at(state)
    assert [batch for batch in again] == first[2:]  # the same batches, where it stopped
    loader.finished_batches = len(loader)
    assert loader.position() == {"epoch": 1, "batches": 0}  # an epoch-end save: the next one
    second = [batch for batch in loader]
    assert [i for i, _ in second[0]] != [i for i, _ in first[0]]  # a new order each epoch
    assert len({seed for batch in first + second for _, seed in batch}) == 20  # fresh item seeds
