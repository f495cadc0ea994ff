"""SpeakerDataModule: disjoint speakers, crops, trial resolution, configuration checks."""

import shutil
from pathlib import Path

import pytest
import torch
from tests.conftest import TINY_DATA

from speakerid.data.corpora import SyntheticCorpus
from speakerid.data.datamodule import SpeakerDataModule
from speakerid.errors import ConfigError, ListFileError


def _datamodule(corpus, **overrides) -> SpeakerDataModule:
    return SpeakerDataModule(corpus, **{**TINY_DATA, **overrides})


def test_speakers_are_disjoint(tiny_corpus: SyntheticCorpus) -> None:
    dm = _datamodule(tiny_corpus)
    dm.setup("fit")
    train = {u.speaker for u in dm.train_rows}
    val = {u.speaker for u in dm.val_trials.utterances}
    test = {u.speaker for u in dm.test_trials.utterances}
    assert len(train) == 5 and len(val) == 2 and len(test) == 3
    assert not (train & val or train & test or val & test)
    assert train | val | test == set(tiny_corpus.manifest().speakers)
    assert dm.speakers == sorted(train)


def test_train_batches_are_fixed_length_crops(tiny_corpus: SyntheticCorpus) -> None:
    dm = _datamodule(tiny_corpus, crop_seconds=0.75)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch.wav.shape == (4, 12000)
    assert batch.lengths.tolist() == [12000] * 4
    assert batch.labels.min() >= 0 and batch.labels.max() < 5
    long_crop = _datamodule(tiny_corpus, crop_seconds=5.0)  # longer than any file: repeated
    long_crop.setup("fit")
    assert next(iter(long_crop.train_dataloader())).wav.shape == (4, 80000)


def test_crops_are_seeded(tiny_corpus: SyntheticCorpus) -> None:
    dm = _datamodule(tiny_corpus, num_workers=2)
    dm.setup("fit")
    torch.manual_seed(3)
    first = next(iter(dm.train_dataloader())).wav
    torch.manual_seed(3)
    assert torch.equal(first, next(iter(dm.train_dataloader())).wav)


def test_eval_batches_hold_whole_utterances_longest_first(tiny_corpus: SyntheticCorpus) -> None:
    dm = _datamodule(tiny_corpus)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    utterances = dm.val_trials.utterances
    assert batch.lengths.tolist() == [u.num_samples for u in utterances[:4]]
    assert batch.lengths.tolist() == sorted(batch.lengths.tolist(), reverse=True)
    assert int(dm.val_trials.enroll.max()) < len(utterances)
    assert set(dm.val_trials.labels.tolist()) == {0, 1}
    capped = _datamodule(tiny_corpus, eval_max_seconds=1.25)
    capped.setup("fit")
    lengths = next(iter(capped.val_dataloader())).lengths.tolist()
    assert lengths == [min(u.num_samples, 20000) for u in capped.val_trials.utterances[:4]]


def test_wrong_num_speakers_names_the_fix(tiny_corpus: SyntheticCorpus) -> None:
    with pytest.raises(ConfigError, match=r"set data\.num_speakers=5"):
        _datamodule(tiny_corpus, num_speakers=7).setup("fit")
    _datamodule(tiny_corpus, num_speakers=7).setup("test")  # evaluation does not need the classes


def test_trial_naming_a_missing_file(tiny_corpus: SyntheticCorpus, tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    shutil.copytree(tiny_corpus.root, root)
    trials = root / "veri_test2.txt"
    trials.write_text(
        trials.read_text() + "1 id10010/session01/00001.wav id10010/session09/00042.wav\n"
    )
    corpus = SyntheticCorpus(str(root), str(tmp_path / "cache"), **_corpus_params(tiny_corpus))
    lines = len(trials.read_text().splitlines())
    with pytest.raises(
        ListFileError, match=rf"veri_test2.txt:{lines}: id10010/session09/00042.wav"
    ):
        _datamodule(corpus).setup("fit")


def _corpus_params(corpus: SyntheticCorpus) -> dict:
    return {k: v for k, v in corpus.params.items() if k != "builder_version"}
