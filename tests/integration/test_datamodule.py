"""SpeakerDataModule: disjoint speakers, crops, trial resolution, configuration checks."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import TINY_DATA

from speakerid.data.audio import read_audio
from speakerid.data.corpora import SyntheticCorpus
from speakerid.data.datamodule import SpeakerDataModule
from speakerid.data.trials import read_iden_split
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
    dm = _datamodule(tiny_corpus, eval={"batch_size": 4})
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    utterances = dm.val_trials.utterances
    assert batch.lengths.tolist() == [u.num_samples for u in utterances[:4]]
    assert batch.lengths.tolist() == sorted(batch.lengths.tolist(), reverse=True)
    assert int(dm.val_trials.enroll.max()) < len(utterances)
    assert set(dm.val_trials.labels.tolist()) == {0, 1}
    capped = _datamodule(tiny_corpus, eval={"max_seconds": 1.25, "batch_size": 4})
    capped.setup("fit")
    lengths = next(iter(capped.val_dataloader())).lengths.tolist()
    assert lengths == [min(u.num_samples, 20000) for u in capped.val_trials.utterances[:4]]


def test_multi_crop_eval_batches(tiny_corpus: SyntheticCorpus) -> None:
    dm = _datamodule(tiny_corpus, eval={"crops": 3, "crop_seconds": 0.5, "batch_size": 6})
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert batch.wav.shape == (6, 8000) and batch.index.tolist() == list(range(6))
    first = dm.val_trials.utterances[0]
    wav = read_audio(dm.manifest.audio_path(first), 16000)
    # crops start at the beginning, the middle and the end of the utterance
    torch.testing.assert_close(batch.wav[0], torch.from_numpy(wav[:8000]))
    middle = round((len(wav) - 8000) / 2)
    torch.testing.assert_close(batch.wav[1], torch.from_numpy(wav[middle : middle + 8000]))
    torch.testing.assert_close(batch.wav[2], torch.from_numpy(wav[-8000:]))
    assert len(dm.val_dataloader().dataset) == 3 * len(dm.val_trials.utterances)
    with pytest.raises(ConfigError, match=r"eval\.crops must be >= 0"):
        _datamodule(tiny_corpus, eval={"crops": -1})


def test_trial_set_extended_keeps_its_trials(tiny_corpus: SyntheticCorpus) -> None:
    dm = _datamodule(tiny_corpus)
    dm.setup("fit")
    trials = dm.val_trials
    extra = [dm.train_rows[0], trials.utterances[0], dm.train_rows[1]]  # one already present
    extended, rows = trials.extended(extra)
    assert len(extended.utterances) == len(trials.utterances) + 2
    assert [extended.utterances[r].utt_id for r in rows.tolist()] == [u.utt_id for u in extra]
    for old, new in ((trials.enroll, extended.enroll), (trials.test, extended.test)):
        assert [trials.utterances[i].utt_id for i in old.tolist()] == [
            extended.utterances[i].utt_id for i in new.tolist()
        ]
    lengths = [u.num_samples for u in extended.utterances]
    assert lengths == sorted(lengths, reverse=True)


def test_wrong_num_speakers_names_the_fix(tiny_corpus: SyntheticCorpus) -> None:
    with pytest.raises(
        ConfigError, match=r"data\.val_speakers=7 must give between 1 and 6 speakers"
    ):
        _datamodule(tiny_corpus, val_speakers=7).setup("fit")
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


def test_iden_split_holds_out_split_3(tiny_corpus: SyntheticCorpus, tmp_path: Path) -> None:
    dm = _datamodule(tiny_corpus, iden_split="iden_split.txt")
    dm.setup("fit")
    splits = read_iden_split(tiny_corpus.trial_path("iden_split.txt"))
    split_of = {p.removesuffix(".wav"): s for p, s in splits.items()}
    assert {split_of[u.utt_id] for u in dm.train_rows} == {1}
    assert {split_of[u.utt_id] for u in dm.iden_test_rows} == {3}
    assert {u.speaker for u in dm.iden_test_rows} == set(dm.speakers)
    bad = tmp_path / "bad_split.txt"
    bad.write_text("1 id10001/session01/00001.wav\n4 id10001/session01/00002.wav\n")
    with pytest.raises(ListFileError, match=r"bad_split\.txt:2: expected '1\|2\|3 path'"):
        read_iden_split(bad)


def test_speed_perturbed_copies_become_new_speakers(tiny_corpus: SyntheticCorpus) -> None:
    plain = _datamodule(tiny_corpus)
    plain.setup("fit")
    n, rows = len(plain.speakers), len(plain.train_rows)
    dm = _datamodule(tiny_corpus, speed_classes=[0.9, 1.1], num_speakers=3 * n)
    dm.setup("fit")
    assert len(dm.speakers) == 3 * n and len(dm.train_rows) == 3 * rows
    assert dm.speakers[n].endswith("@speed0.9") and dm.speakers[2 * n].endswith("@speed1.1")
    labels = torch.cat([b.labels for b in dm.train_dataloader()])
    assert labels.max() >= 2 * n and labels.min() < n
    dataset = dm.train_dataloader().dataset
    same = dataset[(0, 5)][0], dataset[(rows, 5)][0]  # a file and its 0.9x copy, one seed
    assert same[0].shape == same[1].shape and not np.array_equal(*same)
    with pytest.raises(
        ConfigError, match=rf"gives {3 * n} training classes .*: set data\.num_speakers={3 * n}"
    ):
        _datamodule(tiny_corpus, speed_classes=[0.9, 1.1], num_speakers=n).setup("fit")


def test_first_speakers_and_a_seeded_identification_resplit(tiny_corpus: SyntheticCorpus) -> None:
    dm = _datamodule(tiny_corpus, max_speakers=3, num_speakers=3)
    dm.setup("fit")
    assert dm.speakers == sorted(dm.speakers) and len(dm.speakers) == 3
    resplit = _datamodule(tiny_corpus, iden_split="iden_split.txt", iden_resplit=[0.5, 0.0, 0.5])
    resplit.setup("fit")
    per_speaker = {s: 0 for s in resplit.speakers}
    for u in resplit.train_rows:
        per_speaker[u.speaker] += 1
    tested = {s: 0 for s in resplit.speakers}
    for u in resplit.iden_test_rows:
        tested[u.speaker] += 1
    assert per_speaker == tested  # half and half of every speaker's files
    with pytest.raises(ConfigError, match="three fractions summing to 1"):
        _datamodule(tiny_corpus, iden_resplit=[0.5, 0.6, 0.1])
