"""Logger helpers: W&B online only with a key, multirun groups, the recorded code version."""

import re
import shutil
from pathlib import Path

import pytest

from speakerid.utils.loggers import code_version, multirun_group, wandb_configured, wandb_logger


def test_wandb_goes_online_only_with_a_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert not wandb_configured()
    assert wandb_logger(save_dir=str(tmp_path))._offline  # no key: offline, never a network wait
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password k\n")
    assert wandb_configured()
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert wandb_configured()
    assert wandb_logger(offline=True, save_dir=str(tmp_path))._offline  # forced


def test_no_group_outside_a_multirun() -> None:
    assert multirun_group() is None


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_code_version_names_the_commit() -> None:
    info = code_version()
    assert re.fullmatch(r"[0-9a-f]{40}", info["git_commit"]) and isinstance(info["git_dirty"], bool)


def test_a_key_without_a_network_logs_offline(tmp_path: Path, monkeypatch) -> None:
    import socket

    def unreachable(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    monkeypatch.setattr(socket, "create_connection", unreachable)
    assert wandb_logger(save_dir=str(tmp_path))._offline


def test_every_run_of_a_multirun_shares_one_group(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from speakerid.cli import CONFIG_PATH

    sweep = f"hydra.sweep.dir={tmp_path}/2026-11-21_06-00-00"
    job = "hydra.job.name=train"  # as speakerid-train names it
    GlobalHydra.instance().clear()
    with initialize_config_dir(CONFIG_PATH, version_base="1.3"):
        multirun = compose("train", ["hydra.mode=MULTIRUN", sweep, job], return_hydra_config=True)
        single = compose("train", [sweep], return_hydra_config=True)
    try:
        HydraConfig.instance().set_config(multirun)
        assert multirun_group() == "train-2026-11-21_06-00-00"
        logger = wandb_logger(offline=True, save_dir=str(tmp_path))
        assert logger._wandb_init["group"] == "train-2026-11-21_06-00-00"
    finally:
        HydraConfig.instance().set_config(single)
    assert multirun_group() is None
