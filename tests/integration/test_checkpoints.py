"""Checkpoints a tool cannot use: a run that diverges fails with one line and writes no checkpoint
holding NaN; a checkpoint holding NaN, or an enhancer's given to an encoder tool, is refused."""

import zipfile
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tests.conftest import compose_config, tiny_train_config

from speakerid.errors import ConfigError
from speakerid.inference import load_checkpoint, load_system
from speakerid.train import train
from speakerid.verify import verify


def test_a_diverged_run_fails_and_keeps_only_finite_checkpoints(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    cfg = tiny_train_config(tiny_data_dir, tmp_path, "optimizer.lr=1e30", "test=false")
    with pytest.raises(ConfigError, match=r"training diverged: NaN or infinite (weights|val)"):
        train(cfg)
    for ckpt in (tmp_path / "checkpoints").glob("*.ckpt"):  # none, or finite ones only
        state = load_checkpoint(ckpt)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_a_checkpoint_with_nan_weights_is_refused(tiny_data_dir: Path, tmp_path: Path) -> None:
    train(tiny_train_config(tiny_data_dir, tmp_path, "test=false"))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    checkpoint = load_checkpoint(ckpt)
    name = next(k for k, v in checkpoint["state_dict"].items() if v.is_floating_point())
    checkpoint["state_dict"][name][0] = float("nan")
    torch.save(checkpoint, ckpt)
    with pytest.raises(ConfigError, match=rf"last\.ckpt: NaN or infinite weights \({name}"):
        load_system(ckpt)


def test_a_checkpoint_with_damaged_bytes_is_refused(tiny_data_dir: Path, tmp_path: Path) -> None:
    train(tiny_train_config(tiny_data_dir, tmp_path, "test=false"))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    with zipfile.ZipFile(ckpt) as archive:  # the largest tensor: 64 bytes inside its data
        member = max(archive.infolist(), key=lambda m: m.file_size)
        start = member.header_offset + 30 + len(member.filename.encode()) + len(member.extra)
    data = bytearray(ckpt.read_bytes())
    data[start + 128 : start + 192] = bytes(64)
    ckpt.write_bytes(data)
    with pytest.raises(ConfigError, match=r"last\.ckpt: damaged checkpoint \(checksum mismatch"):
        load_checkpoint(ckpt)


def test_an_enhancer_checkpoint_is_refused_by_the_encoder_tools(
    tiny_corpus, tmp_path: Path
) -> None:
    """It used to load, then crash in the forward pass (a long traceback, exit 1 = "different")."""
    cfg = compose_config("enhance", ["data.store=x", "data.embed_dim=16", "data.num_speakers=5"])
    system = instantiate(cfg.system)
    ckpt = tmp_path / "enhancer.ckpt"
    config = OmegaConf.to_container(cfg, resolve=True)
    torch.save({"state_dict": system.state_dict(), "speakerid": {"config": config}}, ckpt)
    wav = str(tiny_corpus.manifest().audio_path(tiny_corpus.manifest()[0]))
    with pytest.raises(
        ConfigError, match=r"enhancer\.ckpt: holds EnhancerModule, not a speaker encoder"
    ):
        verify([wav, wav, f"ckpt_path={ckpt}"])


def test_a_crash_in_verify_is_exit_status_2_not_different(monkeypatch, capsys) -> None:
    import speakerid.verify as verify_module

    def crash(argv):
        raise RuntimeError("boom")

    monkeypatch.setattr(verify_module, "verify", crash)
    monkeypatch.setattr("sys.argv", ["speakerid-verify", "a.wav", "b.wav"])
    with pytest.raises(SystemExit) as stopped:
        verify_module.main()
    assert stopped.value.code == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .startswith("error: speakerid-verify failed")
    )
