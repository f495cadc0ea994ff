"""Guarded fine-tuning from the command line: ``speakerid-train experiment=finetune
init_from=<the converted GE2E checkpoint> data=folder`` on a folder built from the built-in
corpus's audio. The run tests the starting model and the fine-tuned one on the same held-out
trials and keeps the better: fine-tuning lowers the GE2E model's EER (the fine-tuned model is
kept), and a huge learning rate makes it worse (the start is kept, and the run says so)."""

import json
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from tests.conftest import compose_config
from tests.integration.test_folder_training import speaker_folder

from speakerid import train
from speakerid.errors import ConfigError
from speakerid.finetune import finetune_config
from speakerid.inference import load_checkpoint, load_system
from speakerid.pretrained import convert_resemblyzer, resemblyzer_weights


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pretrained") / "resemblyzer.ckpt"
    convert_resemblyzer(resemblyzer_weights(out.parent / "downloads"), out)
    return out


@pytest.fixture(scope="module")
def folder(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speaker_folder(tiny_data_dir / "synthetic" / "wav", tmp_path_factory.mktemp("mine"))


def _finetune(converted: Path, folder: Path, tmp_path: Path, monkeypatch, *extra: str):
    """``speakerid-train experiment=finetune ...`` (the entry point, in this process); the run
    folder and its metrics."""
    argv = [
        "experiment=finetune",
        f"init_from={converted}",
        "data=folder",
        f"data.corpus.root={folder}",
        "data.test_speakers=3",
        "data.val_speakers=2",
        "data.num_workers=0",
        "init_head=inherit",  # its GE2E head (w, b) and loss, on N x M batches
        "sampler=speaker_batches",
        "data.sampler.speakers=5",
        "data.sampler.utterances=2",
        "data.crop_seconds=1.6",
        "trainer.max_epochs=4",
        "callbacks.early_stopping.patience=2",
        "logger=csv",
        "callbacks.rich_progress_bar=null",
        "trainer.enable_progress_bar=false",
        f"paths.root_dir={tmp_path}",
        *extra,
    ]
    GlobalHydra.instance().clear()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["speakerid-train", *argv])
    train.main()
    (metrics,) = (tmp_path / "logs" / "train" / "runs").rglob("metrics.json")
    return metrics.parent, json.loads(metrics.read_text())


@pytest.mark.slow  # a training run of the 1.4 M-parameter LSTM (347 s on the shared 2-core CPU)
def test_fine_tuning_the_ge2e_checkpoint_lowers_its_held_out_eer(
    converted: Path, folder: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    run, metrics = _finetune(converted, folder, tmp_path, monkeypatch, "optimizer.lr=1e-3")
    start, tuned = metrics["finetune/start_eer"], metrics["finetune/tuned_eer"]
    assert tuned < start and metrics["finetune/start_kept"] == 0.0
    assert metrics["test/eer"] == tuned
    printed = capsys.readouterr().out
    assert (
        f"fine-tuning: held-out test EER {100 * start:.2f} % at the start, {100 * tuned:.2f} % "
        f"fine-tuned: the fine-tuned model is kept ({run / 'checkpoints' / 'kept.ckpt'})"
    ) in printed
    kept = load_checkpoint(run / "checkpoints" / "kept.ckpt")
    best = load_checkpoint(run / "checkpoints" / "best.ckpt")["state_dict"]
    for name, value in best.items():
        torch.testing.assert_close(kept["state_dict"][name], value)
    assert kept["speakerid"]["thresholds"]["eer"] == pytest.approx(metrics["test/eer_threshold"])
    system, run_cfg, _ = load_system(run / "checkpoints" / "kept.ckpt")
    assert type(system.features).__name__ == "Ge2eMel"  # the checkpoint's front end, kept
    assert type(system.backbone).__name__ == "Ge2eLstm"
    assert (
        run_cfg.features.num_mels == 40
        and run_cfg.loss == load_checkpoint(converted)["speakerid"]["config"]["loss"]
    )  # the inherited head's own config


def test_a_huge_learning_rate_keeps_the_starting_model_and_says_so(
    converted: Path, folder: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    run, metrics = _finetune(
        converted, folder, tmp_path, monkeypatch, "optimizer.lr=0.5", "trainer.max_epochs=1"
    )
    assert metrics["finetune/start_kept"] == 1.0
    assert metrics["finetune/tuned_eer"] > metrics["finetune/start_eer"] == metrics["test/eer"]
    assert "the fine-tuned model is not better: the starting model is kept" in (
        capsys.readouterr().out
    )
    kept = load_checkpoint(run / "checkpoints" / "kept.ckpt")["state_dict"]
    start = load_checkpoint(converted)["state_dict"]
    for name, value in start.items():
        if name.startswith(("backbone.", "features.")):
            torch.testing.assert_close(kept[name], value)


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (["init_from=null"], "experiment=finetune needs init_from=<a speakerid checkpoint>"),
        (["test=false"], "experiment=finetune needs test=true: its guard tests both models"),
        (["finetune.freeze=everything"], "finetune.freeze='everything': nothing, backbone, or N"),
        (["init_head=both"], "init_head: fresh or inherit, got 'both'"),
        (
            ["data.sample_rate=8000"],
            "a 16000 Hz model, but data.sample_rate=8000: set data.sample_rate=16000",
        ),
    ],
)
def test_a_finetune_run_that_cannot_start_is_one_line(
    converted: Path, overrides: list[str], line: str
) -> None:
    cfg = compose_config("train", ["experiment=finetune", f"init_from={converted}", *overrides])
    with pytest.raises(ConfigError) as refused:
        finetune_config(cfg)
    assert line in str(refused.value) and "\n" not in str(refused.value)
