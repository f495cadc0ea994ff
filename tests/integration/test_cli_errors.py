"""Composition errors of the Hydra entry points are one line and exit status 2."""

import sys

import pytest
from hydra.core.global_hydra import GlobalHydra

from speakerid import embed, enhance, evaluate, train
from speakerid.cli import QUOTING_HINT


def _run(main, argv: list[str], monkeypatch, capsys, tmp_path) -> tuple[int, list[str]]:
    GlobalHydra.instance().clear()
    monkeypatch.chdir(tmp_path)  # a run folder, if any, goes there
    monkeypatch.setattr(sys, "argv", ["speakerid", *argv, f"paths.root_dir={tmp_path}"])
    with pytest.raises(SystemExit) as stopped:
        main()
    return stopped.value.code, capsys.readouterr().err.strip().splitlines()


def test_a_target_head_in_the_encoder_is_refused_at_compose_time(
    monkeypatch, capsys, tmp_path
) -> None:
    code, lines = _run(train.main, ["loss=mse"], monkeypatch, capsys, tmp_path)
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("error: loss=mse: no such choice in conf/loss/")
    assert "'mse' is a choice of enhance_loss" in lines[0]


@pytest.mark.parametrize(
    ("main", "argv", "expected"),
    [
        (
            train.main,
            ["loss=nosuch"],
            "error: loss=nosuch: no such choice in conf/loss/ (choices: ",
        ),
        (train.main, ["data.batch_sizee=3"], "error: Could not override 'data.batch_sizee'."),
        (train.main, ["data.eval.crops=-1"], "error: data.eval.crops must be >= 0"),
        # checked before the corpus is built (none exists under tmp_path)
        (train.main, ["trainer.max_epochs=abc"], "error: trainer.max_epochs='abc': expected an"),
        (train.main, ["seed=abc"], "error: seed='abc': expected an integer"),
        (train.main, ["optimizer.lr=-1"], "error: optimizer.lr=-1: expected a learning rate"),
        (train.main, ["data.batch_size=0"], "error: data.batch_size=0: expected an integer >= 1"),
        (train.main, ["data.batch_size=-1"], "error: data.batch_size=-1: expected an integer"),
        (train.main, ["data.crop_seconds=0"], "error: data.crop_seconds=0: expected a number"),
        (train.main, ["data.val_speakers=1"], "error: data.val_speakers=1: expected a count >= 2"),
        (train.main, ["loss.scale=-5"], "error: loss.scale=-5: expected a logit scale > 0"),
        (train.main, ["loss.margin=2"], "error: loss.margin=2: expected a margin in [0, 1)"),
        (train.main, ["loss=am_softmax", "loss.margin=-0.1"], "error: loss.margin=-0.1: expected"),
        (train.main, ["data.num_speakers=1"], "error: data.num_speakers=1: expected at least 2"),
        # asked to resume, a run never starts afresh
        (train.main, ["ckpt_path=last"], "error: ckpt_path=last: nothing to resume, no last*.ckpt"),
        (
            train.main,
            ["ckpt_path=/no/such.ckpt"],
            "error: ckpt_path=/no/such.ckpt: no such checkpoint",
        ),
        # Lightning's reason, not Hydra's "Error in call to target" alone
        (
            train.main,
            ["trainer.precision=bogus"],
            "error: trainer: Precision 'bogus' is invalid. Allowed precision values: (",
        ),
        (train.main, ["test_ckpt=averaged"], "error: test_ckpt=averaged needs callbacks.average"),
        (train.main, ["features.window=kaiser"], "error: KaldiFbank: window must be one of"),
        (
            train.main,
            ["experiment=wespeaker_ecapa512", "trainer=cpu", "scheduler.final_lr=1"],
            "error: scheduler: need 0 < final_lr <= initial_lr, got 1",
        ),
        (
            train.main,
            ["experiment=wespeaker_ecapa512", "trainer=cpu", "callbacks.average.num=0"],
            "error: callbacks.average.num: at least 1 epoch, got 0",
        ),
        (
            train.main,
            ["experiment=wespeaker_ecapa512", "trainer=cpu", "data.speed_mode=sometimes"],
            "error: data.speed_mode: copies, random or classes, got 'sometimes'",
        ),
        (evaluate.main, ["ckpt_path=x", "batch_size=0"], "error: batch_size=0: expected an"),
        (evaluate.main, ["ckpt_path=x", "crop_seconds=0"], "error: crop_seconds=0: expected a"),
        (embed.main, ["ckpt_path=x", "crops=-1"], "error: crops=-1: expected an integer >= 0"),
        (embed.main, ["ckpt_path=x", "shard_size=0"], "error: shard_size=0: expected an"),
        (enhance.main, ["data.store=x", "optimizer.lr=0"], "error: optimizer.lr=0: expected a"),
        (enhance.main, ["model/enhancer=nosuch"], "error: model/enhancer=nosuch: no such choice"),
        # paths with Hydra's special characters: the line says how to quote them
        (train.main, ["ckpt_path=/d/a,b.ckpt"], "error: Ambiguous value for argument"),
        (train.main, ["ckpt_path=/d/a[1].ckpt"], "error: mismatched input '['"),
        (train.main, ["ckpt_path=/d/a=b.ckpt"], "error: mismatched input '='"),
    ],
)
def test_configuration_errors_are_one_line(
    main, argv, expected, monkeypatch, capsys, tmp_path
) -> None:
    code, lines = _run(main, argv, monkeypatch, capsys, tmp_path)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(expected)
    if "ckpt_path=/d/" in argv[0]:
        assert lines[0].endswith(QUOTING_HINT)


def test_validation_speakers_with_one_utterance_each_are_refused_before_training() -> None:
    from speakerid.data.manifest import Utterance
    from speakerid.data.trialset import generated_trials
    from speakerid.errors import ConfigError

    rows = [Utterance(f"s{i}/a/1", f"s{i}/a/1.wav", f"s{i}", "a", 16000, 16000) for i in range(4)]
    with pytest.raises(ConfigError, match=r"4 val speaker\(s\) give no val trials.*\(0 have\)"):
        generated_trials("val", rows, 2, seed=0)
