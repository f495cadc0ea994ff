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
