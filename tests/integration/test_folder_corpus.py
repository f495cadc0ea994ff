"""A folder corpus never walks out of its root (a symlink to ``/`` is counted, not followed; a
link to one file is read), and
takes ``extensions=wav`` as one ending."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speakerid.data.corpora import FolderCorpus
from speakerid.data.corpora.folder import extension_list
from speakerid.errors import ConfigError, CorpusError


def _wav(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), 0.1 * np.random.default_rng(0).standard_normal(8000), 16000)


@pytest.fixture
def linked(tmp_path: Path) -> Path:
    """Two speakers; links out of the root (to /, to a wav elsewhere, a loop) and inside it."""
    root = tmp_path / "corpus"
    for name in ("alice/1.wav", "alice/2.wav", "bob/s1/1.wav"):
        _wav(root / name)
    _wav(tmp_path / "elsewhere" / "x.wav")
    os.symlink("/", root / "alice" / "everything")
    os.symlink(tmp_path / "elsewhere", root / "carol")  # a speaker folder on another disk
    os.symlink(tmp_path / "elsewhere" / "x.wav", root / "bob" / "x.wav")  # a file: read
    os.symlink("loop", root / "bob" / "loop")
    os.symlink(root / "alice", root / "bob" / "alias")  # inside: found under alice/ anyway
    os.symlink(root / "alice" / "1.wav", root / "bob" / "copy.wav")  # a file inside: read
    return root


def test_links_out_of_the_root_are_counted_not_followed(linked: Path, tmp_path: Path) -> None:
    corpus = FolderCorpus(str(linked), str(tmp_path / "cache"))
    manifest = corpus.manifest()
    utterances = ["alice/1", "alice/2", "bob/copy", "bob/s1/1", "bob/x"]
    assert sorted(u.utt_id for u in manifest) == utterances
    report = json.loads(corpus.report_path().read_text())
    assert report["counts"]["outside_root"] == {"skip": 3}
    assert sorted(Path(p["file"]).name for p in report["problems"]) == [
        "carol",
        "everything",
        "loop",
    ]
    again = corpus.manifest()  # from the cache: the fingerprint does not walk out either
    assert [u.utt_id for u in again] == [u.utt_id for u in manifest]


def test_a_policy_can_make_links_out_of_the_root_an_error(linked: Path, tmp_path: Path) -> None:
    corpus = FolderCorpus(str(linked), str(tmp_path / "cache"), policy={"outside_root": "fail"})
    with pytest.raises(
        CorpusError, match=r"(?s)3 bad audio file\(s\).*everything: a symlink to /: not followed"
    ):
        corpus.manifest()


def test_one_extension_as_a_string_is_one_ending(tmp_path: Path) -> None:
    assert extension_list("wav") == ("wav",)  # not ("w", "a", "v")
    assert extension_list([".WAV", "flac"]) == ("wav", "flac")
    corpus = FolderCorpus(str(tmp_path), str(tmp_path / "cache"), extensions="wav")
    assert corpus.extensions == ("wav",)
    for empty in ([], "", [""]):
        with pytest.raises(ConfigError, match="extensions: file endings such as"):
            extension_list(empty)


def test_embed_reads_a_folder_without_a_trial_list(linked: Path, tmp_path: Path) -> None:
    from tests.conftest import compose_config

    from speakerid.embed import _open_corpus

    folder = ["data=folder", f"data.corpus.root={linked}", f"paths.data_dir={tmp_path}"]
    cfg = compose_config("embed", folder)  # two speakers: too few to split, none needed
    datamodule, meta = _open_corpus(cfg.data, 0, "model")
    assert len(datamodule.manifest) == 5 and meta["trials"] is None
    listed = compose_config("embed", [*folder, "data.test_trials=trials.txt"])
    assert _open_corpus(listed.data, 0, "model")[1]["trials"] is None  # named, not there
    (linked / "trials.txt").write_text("0 alice/1 bob/s1/1\n1 alice/1 alice/2\n")  # recorded
    assert _open_corpus(listed.data, 0, "model")[1]["trials"] == str(linked / "trials.txt")


def test_identify_takes_one_extension_as_a_string(tmp_path: Path) -> None:
    from speakerid.enrolment import audio_files

    _wav(tmp_path / "a.wav")
    _wav(tmp_path / "b.flac")
    from speakerid.cli import tool_config

    cfg, _ = tool_config("identify", ["extensions=wav", "ckpt_path=x", "enrol_dir=y"])
    assert audio_files(tmp_path, list(extension_list(cfg.extensions))) == [tmp_path / "a.wav"]
