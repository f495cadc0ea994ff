"""Embedding stores cannot be lost or mixed: one writer per store (across processes, released by
a killed one), a changed checkpoint is refused on resume, an unfinished store is never read as
data, and the default output is the same folder for the same command. Two builders of one
synthetic corpus: the second waits and uses the first one's."""

import json
import multiprocessing as mp
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import compose_config

from speakerid.data.embedding_store import EmbeddingStore, StoreWriter
from speakerid.embed import default_output
from speakerid.errors import ConfigError
from speakerid.utils.io import FileLock


def _index(n: int) -> list[tuple[str, str, str]]:
    return [(f"id{i % 3}/{i:05d}", f"id{i % 3}", "s") for i in range(n)]


def _writer(root: Path, sha: str = "a" * 64) -> StoreWriter:
    meta = {"source": "/runs/last.ckpt", "source_sha256": sha}
    return StoreWriter(root, _index(6), 1, 4, meta, shard_size=3)


def test_a_second_writer_of_a_store_is_refused_and_the_first_completes(tmp_path: Path) -> None:
    first = _writer(tmp_path / "store")
    with pytest.raises(ConfigError, match=rf"store .*store is being written by pid {os.getpid()}"):
        _writer(tmp_path / "store")
    data = np.ones((6, 1, 4), np.float32)
    first.write_shard(0, data[:3])
    first.write_shard(1, data[3:])
    store = first.finish()
    np.testing.assert_array_equal(store.array, data)
    assert not (tmp_path / "store.lock").exists()
    _writer(tmp_path / "store").lock.release()  # free again once finished


def _hold_lock(path: str, ready) -> None:
    lock = FileLock(path, "the store x")  # held while referenced
    ready.set()
    signal.pause()
    lock.release()


def test_the_lock_spans_processes_and_dies_with_a_killed_holder(tmp_path: Path) -> None:
    context = mp.get_context("fork")
    ready = context.Event()
    holder = context.Process(target=_hold_lock, args=(str(tmp_path / "x.lock"), ready), daemon=True)
    holder.start()
    assert ready.wait(10)
    with pytest.raises(ConfigError, match=f"being written by pid {holder.pid}"):
        FileLock(tmp_path / "x.lock", "the store x")
    os.kill(holder.pid, signal.SIGKILL)  # kill -9: no clean-up runs
    holder.join()
    FileLock(tmp_path / "x.lock", "the store x").release()


def test_resuming_with_a_changed_checkpoint_is_refused(tmp_path: Path) -> None:
    writer = _writer(tmp_path / "store")
    writer.write_shard(0, np.zeros((3, 1, 4), np.float32))
    writer.lock.release()  # interrupted after one shard
    with pytest.raises(ConfigError, match="checkpoint changed since it was started"):
        _writer(tmp_path / "store", sha="b" * 64)
    resumed = _writer(tmp_path / "store")  # the same weights resume
    assert resumed.pending() == [1]


def test_an_unfinished_store_is_never_read_as_data(tmp_path: Path) -> None:
    writer = _writer(tmp_path / "store")
    writer.write_shard(0, np.zeros((3, 1, 4), np.float32))
    for path in (tmp_path / "store.partial", tmp_path / "store"):
        with pytest.raises(ConfigError, match=r"unfinished store|rerun to resume"):
            EmbeddingStore(path)


def test_an_unwritable_output_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")  # not a folder: unwritable, even for root
    with pytest.raises(ConfigError, match=r"sub: cannot write here"):
        _writer(tmp_path / "file" / "sub" / "store")
    if os.geteuid() != 0:  # root writes into read-only folders
        (tmp_path / "ro").mkdir(mode=0o500)
        with pytest.raises(ConfigError, match="cannot write here"):
            _writer(tmp_path / "ro" / "store")


def test_the_default_output_is_stable_per_model_and_corpus(tmp_path: Path) -> None:
    cfg = compose_config("embed", [f"paths.data_dir={tmp_path}", "data=synthetic"])
    one = default_output(cfg, "/runs/a/last.ckpt", cfg.data)
    assert one == default_output(cfg, "/runs/a/last.ckpt", cfg.data)
    assert one.parent == tmp_path / "embeddings" and one.name.startswith("last-")
    assert one != default_output(cfg, "/runs/b/last.ckpt", cfg.data)
    other = compose_config("embed", [f"paths.data_dir={tmp_path}", "data=synthetic", "crops=3"])
    assert one != default_output(other, "/runs/a/last.ckpt", other.data)


def test_two_builders_of_one_corpus_build_it_once(tmp_path: Path, monkeypatch) -> None:
    from speakerid.data.corpora import SyntheticCorpus

    builds: list[int] = []

    def slow_build(self) -> None:
        builds.append(1)
        time.sleep(0.3)  # the other builder arrives meanwhile
        self.root.mkdir()
        (self.root / "corpus.json").write_text(json.dumps(self.params))

    monkeypatch.setattr(SyntheticCorpus, "_build", slow_build)
    corpus = SyntheticCorpus(str(tmp_path / "synthetic"), str(tmp_path / "cache"))
    errors: list[BaseException] = []

    def prepare() -> None:
        try:
            SyntheticCorpus(str(tmp_path / "synthetic"), str(tmp_path / "cache")).prepare()
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=prepare) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors and builds == [1] and (corpus.root / "corpus.json").is_file()
