"""Composition errors of the Hydra entry points are one line and exit status 2."""

import sys

import pytest
from hydra.core.global_hydra import GlobalHydra

from speakerid import enhance, train


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
        (enhance.main, ["model/enhancer=nosuch"], "error: model/enhancer=nosuch: no such choice"),
    ],
)
def test_configuration_errors_are_one_line(
    main, argv, expected, monkeypatch, capsys, tmp_path
) -> None:
    code, lines = _run(main, argv, monkeypatch, capsys, tmp_path)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(expected)
