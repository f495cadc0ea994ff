"""SIGTERM (preemption) and Ctrl+C during training: a checkpoint where the loop stopped, one
line, exit status 143 / 130, and a resumed run that ends exactly as an uninterrupted one."""

import os
import signal
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from tests.conftest import TINY_MODEL, tiny_overrides, tiny_train_config

from speakerid import train as train_entry
from speakerid.inference import load_checkpoint
from speakerid.runs import Stopped
from speakerid.train import train

SETTINGS = [
    "trainer.max_epochs=2",
    "callbacks.last_checkpoint.every_n_train_steps=2",
    "callbacks.last_checkpoint.every_n_epochs=null",
    "trainer.log_every_n_steps=1",
]


class SignalAtStep(L.Callback):
    """Sends this process ``signum`` (``times`` times) once the loop has finished ``step``."""

    def __init__(self, signum: int, step: int, times: int = 1) -> None:
        self.signum, self.step, self.times = signum, step, times

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)


def _signalled(monkeypatch, signum: int, step: int, times: int = 1) -> None:
    original = L.Trainer.__init__

    def with_signal(self, *args, callbacks=(), **kwargs):
        original(self, *args, callbacks=[*callbacks, SignalAtStep(signum, step, times)], **kwargs)

    monkeypatch.setattr(L.Trainer, "__init__", with_signal)


@pytest.fixture(scope="module")
def uninterrupted(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    run = tmp_path_factory.mktemp("full")
    return train(tiny_train_config(tiny_data_dir, run, *SETTINGS)), run


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_a_checkpoint_and_exits_128_plus_signal(
    signum: int, uninterrupted: tuple, tiny_data_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    run = tmp_path / "run"
    overrides = [*tiny_overrides(tiny_data_dir, run), *SETTINGS, f"hydra.run.dir={run}"]
    overrides += [f"{k}={v}" for k, v in TINY_MODEL.items()]
    overrides += ["callbacks.rich_progress_bar=null", "trainer.enable_progress_bar=false"]
    _signalled(monkeypatch, signum, step=5)  # not a multiple of 2: no periodic save there
    GlobalHydra.instance().clear()
    monkeypatch.setattr(sys, "argv", ["speakerid-train", *overrides])
    with pytest.raises(SystemExit) as stopped:
        train_entry.main()
    monkeypatch.undo()

    assert stopped.value.code == 128 + signum
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("stopped:")]
    name = signal.Signals(signum).name
    assert lines == [
        f"stopped: {name} at epoch 0, step 5: saved {run}/checkpoints/last.ckpt; continue with "
        f"hydra.run.dir={run} ckpt_path=last"
    ]
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 5
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler put back

    resumed = train(tiny_train_config(tiny_data_dir, run, *SETTINGS, "ckpt_path=last"))
    full, full_run = uninterrupted
    for key in ("val/eer", "val/min_dcf", "test/eer", "test/min_dcf", "train/loss"):
        assert resumed[key] == full[key], key  # exactly
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    ours = load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]
    for name, value in load_checkpoint(full_run / "checkpoints" / "last.ckpt")[
        "state_dict"
    ].items():
        torch.testing.assert_close(ours[name], value, rtol=0, atol=0)


def test_a_second_ctrl_c_stops_at_once_without_a_checkpoint(
    tiny_data_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    _signalled(monkeypatch, signal.SIGINT, step=5, times=2)
    with pytest.raises(Stopped) as stopped:
        train(tiny_train_config(tiny_data_dir, tmp_path, *SETTINGS))
    assert stopped.value.code == 130
    kept = tmp_path / "checkpoints" / "last.ckpt"
    assert stopped.value.line == (
        f"SIGINT at epoch 0, step 5, nothing saved now; {kept} is the last checkpoint"
    )
    assert load_checkpoint(kept)["global_step"] == 4  # the periodic one, untouched


class _Embed(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    def predict_step(self, batch, batch_idx):
        self.seen += 1
        return batch


class _SignalAtBatch(L.Callback):
    def __init__(self, signum: int) -> None:
        self.signum = signum

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *rest) -> None:
        if batch_idx == 0:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_an_evaluations_embedding_at_once(signum: int) -> None:
    """Lightning's prediction loop never looks at SIGTERM and exits 1 on Ctrl+C: StopPredicting
    (speakerid-eval's) stops after the batch, exit status 128 + signal."""
    from speakerid.runs import StopPredicting

    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[_SignalAtBatch(signum), StopPredicting()],
    )
    model = _Embed()
    try:
        with pytest.raises(Stopped) as stopped:
            trainer.predict(model, dataloaders=torch.utils.data.DataLoader(torch.zeros(20, 2)))
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
    assert stopped.value.code == 128 + signum and "nothing written" in stopped.value.line
    assert model.seen <= 2  # not the 20 batches
