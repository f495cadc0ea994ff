"""Atomic writes: all or nothing, with the usual file mode."""

import os
from pathlib import Path

import pytest

from speakerid.utils.io import atomic_open, write_json


def test_write_replaces_only_on_success(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "report.json"
    write_json(path, {"eer": 0.05})
    with pytest.raises(RuntimeError), atomic_open(path) as f:
        f.write("half a file")
        raise RuntimeError("interrupted")
    assert path.read_text() == '{\n  "eer": 0.05\n}\n'
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]  # no temp file left


def test_files_get_the_usual_mode(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", {})
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~mask


def test_checkpoints_are_written_atomically(tmp_path: Path, monkeypatch) -> None:
    import torch
    from lightning.pytorch.plugins.io import TorchCheckpointIO

    from speakerid.callbacks import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)

    def killed_while_writing(self, checkpoint, target, storage_options=None):
        Path(target).write_bytes(b"half a checkpoint")  # what Lightning had written so far
        raise OSError("disk full")

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", killed_while_writing)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"step": 2}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}  # the previous one, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temp file left


def test_random_state_survives_a_checkpoint(tmp_path: Path) -> None:
    import random

    import numpy as np
    import torch

    from speakerid.callbacks import RandomState

    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    torch.save(RandomState().state_dict(), tmp_path / "state.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(9)
    np.random.seed(9)
    random.seed(9)
    RandomState().load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]
