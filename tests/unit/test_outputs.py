"""Nothing a user had is deleted, overwritten or mixed by a command's outputs (issue 23): a store
written over a folder of the user's files, over a finished store of other settings, or into the
corpus it reads is refused before any work; a rerun of the same command finds its store done."""

import os
from pathlib import Path

import numpy as np
import pytest

from speakerid.data.embedding_store import EmbeddingStore, StoreWriter
from speakerid.errors import ConfigError
from speakerid.outputs import claim_folder, overlap, refuse_overlap, remove_ours


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _write(root: Path, sha: str = "a" * 64, overwrite: bool = False, value: float = 1.0):
    index = [(f"u{i}", f"s{i % 2}", "x") for i in range(4)]
    writer = StoreWriter(root, index, 1, 3, {"source_sha256": sha}, 2, overwrite)
    for shard in writer.pending():
        writer.write_shard(shard, np.full((2, 1, 3), value, np.float32))
    return writer.finish()


def test_a_store_over_a_folder_of_the_users_files_is_refused_and_nothing_is_touched(
    tmp_path: Path,
) -> None:
    """The reported case: the folder's contents were removed and the store put there, exit 0."""
    folder = tmp_path / "notes"
    (folder / "audio").mkdir(parents=True)
    (folder / "todo.txt").write_text("mine")
    (folder / "audio" / "a.wav").write_bytes(b"RIFF")
    before = _files(folder)
    with pytest.raises(ConfigError, match=r"output=.*notes: exists and is not an embedding store"):
        _write(folder)
    with pytest.raises(ConfigError, match=r"not an embedding store"):
        _write(folder, overwrite=True)  # overwrite is for stores of ours only
    assert _files(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]  # no .partial, no lock left


def test_a_rerun_finds_its_store_complete_and_other_settings_are_refused(tmp_path: Path) -> None:
    store = _write(tmp_path / "store")
    stamp = os.stat(store.root / "embeddings.npy").st_mtime_ns
    again = _write(tmp_path / "store", value=2.0)  # same settings: nothing recomputed
    assert os.stat(again.root / "embeddings.npy").st_mtime_ns == stamp
    assert float(again.array[0, 0, 0]) == 1.0
    with pytest.raises(ConfigError, match=r"holds a finished store made with other settings "):
        _write(tmp_path / "store", sha="b" * 64, value=3.0)
    assert float(EmbeddingStore(tmp_path / "store").array[0, 0, 0]) == 1.0
    replaced = _write(tmp_path / "store", sha="b" * 64, overwrite=True, value=3.0)
    assert float(replaced.array[0, 0, 0]) == 3.0 and replaced.meta["source_sha256"] == "b" * 64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_a_users_folder_named_like_our_work_in_progress_is_never_removed(tmp_path: Path) -> None:
    """``<store>.partial.tmp`` and ``<store>.old`` were removed blindly."""
    mine = tmp_path / "store.partial.tmp"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"store\.partial\.tmp: exists and was not made by"):
        _write(tmp_path / "store")
    assert (mine / "keep.txt").read_text() == "mine"
    remove_ours(tmp_path / "missing")  # nothing there: nothing to do


def test_overlapping_paths_are_refused_both_ways(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    assert overlap(corpus, corpus / "sub") and overlap(corpus / "sub", corpus)
    assert overlap(corpus, tmp_path / "x" / ".." / "corpus") and not overlap(corpus, tmp_path / "c")
    (tmp_path / "link").symlink_to(tmp_path)
    assert overlap(tmp_path / "link" / "corpus", corpus)  # resolved
    for output in (corpus, corpus / "store", tmp_path):
        with pytest.raises(ConfigError, match=r"output=.*overlaps an input of this command"):
            refuse_overlap(output, [corpus], "output")


def test_claim_folder_takes_new_empty_or_own_folders_only(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "x").write_text("x")
    (tmp_path / "file").write_text("x")
    assert claim_folder(tmp_path / "new", "output_dir", lambda f: False) == tmp_path / "new"
    assert claim_folder(tmp_path / "empty", "output_dir", lambda f: False)
    assert claim_folder(tmp_path / "mine", "output_dir", lambda f: True)
    with pytest.raises(ConfigError, match=r"output_dir=.*mine: already holds files"):
        claim_folder(tmp_path / "mine", "output_dir", lambda f: False)
    with pytest.raises(ConfigError, match=r"is a file, not a folder"):
        claim_folder(tmp_path / "file", "output_dir", lambda f: True)


def test_a_users_folder_where_a_corpus_build_leaves_its_work_is_never_removed(
    tmp_path: Path,
) -> None:
    """The synthetic corpus builder removed ``<root>.partial`` blindly before building."""
    from speakerid.data.corpora.synthetic import SyntheticCorpus

    mine = tmp_path / "synthetic.partial"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    corpus = SyntheticCorpus(
        str(tmp_path / "synthetic"), str(tmp_path / "cache"), num_speakers=4, test_speakers=2
    )
    with pytest.raises(ConfigError, match=r"synthetic\.partial: exists and was not made by"):
        corpus.prepare()
    assert (mine / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(("task", "resumes"), [("train", True), ("enhance", True), ("eval", False)])
def test_a_run_folder_is_reused_only_by_a_training_that_resumes_it(
    tmp_path: Path, task: str, resumes: bool, monkeypatch
) -> None:
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from speakerid.outputs import FreshRunFolder

    monkeypatch.setattr(HydraConfig, "set_config", lambda self, cfg: None)  # a plain test config

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("{}")
    config = OmegaConf.create(
        {"task_name": task, "ckpt_path": "last", "hydra": {"run": {"dir": str(tmp_path)}}}
    )
    if resumes:
        FreshRunFolder().on_run_start(config)
    else:
        with pytest.raises(SystemExit):
            FreshRunFolder().on_run_start(config)
    with pytest.raises(SystemExit):  # without ckpt_path: another run's folder
        FreshRunFolder().on_run_start(OmegaConf.merge(config, {"ckpt_path": None}))
