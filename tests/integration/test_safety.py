"""Nothing is written outside the run folder and the data folder."""

from pathlib import Path

from tests.conftest import compose_config, tiny_train_config

from speakerid.evaluate import evaluate
from speakerid.train import train


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_train_and_eval_write_only_into_their_folders(
    tiny_data_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    home, cwd, run = tmp_path / "home", tmp_path / "cwd", tmp_path / "run"
    for folder in (home, cwd):
        folder.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.chdir(cwd)
    data_before = _files(tiny_data_dir)
    train(tiny_train_config(tiny_data_dir, run, "logger=[csv,tensorboard,wandb]"))
    evaluate(
        compose_config(
            "eval",
            [
                f"ckpt_path={run}/checkpoints/last.ckpt",
                f"paths.output_dir={run}/eval",
                "num_workers=0",
                "evaluation.sections.identification=null",
                "evaluation.sections.clustering=null",
                "logger=[tensorboard]",
            ],
        )
    )
    assert _files(cwd) == set() and _files(home) == set()
    added = _files(tiny_data_dir) - data_before  # at most the manifest cache, in the data folder
    assert all(p.is_relative_to(tiny_data_dir / "cache") for p in added)
    assert (run / "eval.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
