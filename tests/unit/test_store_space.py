"""A store that the disk cannot hold fails when it is created, in one line, leaving nothing —
not with a bare "Bus error" when the memory-mapped array meets the full disk mid-run."""

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from speakerid.data.embedding_store import StoreWriter
from speakerid.errors import ConfigError


def _writer(root: Path, utterances: int = 6) -> StoreWriter:
    index = [(f"s{i % 2}/{i}", f"s{i % 2}", "-") for i in range(utterances)]
    return StoreWriter(root, index, 10, 192, {"source": "x"}, shard_size=3)


def test_the_arrays_blocks_are_reserved_when_the_store_is_created(tmp_path: Path) -> None:
    writer = _writer(tmp_path / "store")
    array = writer.partial / "embeddings.npy"
    assert os.stat(array).st_blocks * 512 >= 6 * 10 * 192 * 4  # not a sparse file


def test_a_full_disk_is_refused_up_front_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(ConfigError) as refused:
        _writer(tmp_path / "store")
    assert str(refused.value) == (
        f"{tmp_path}/store.partial: No space left on device: the store needs 0.05 MB "
        "(6 x 10 x 192 float32); make room or choose another output"
    )
    assert list(tmp_path.iterdir()) == []  # no .partial(.tmp), no lock file
    monkeypatch.undo()
    writer = _writer(tmp_path / "store")  # with room again, it starts cleanly
    writer.write_shard(0, np.zeros((3, 10, 192), np.float32))
