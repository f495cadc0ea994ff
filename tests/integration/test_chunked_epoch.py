"""SpeechBrain's chunked epoch (``data.chunk_seconds``): each training file once per whole chunk
it holds, as ``voxceleb_prepare.py`` writes one row per non-overlapping chunk."""

import numpy as np
import pytest
from tests.conftest import TINY_DATA, compose_config

from speakerid.data.corpora import SyntheticCorpus
from speakerid.data.datamodule import SpeakerDataModule
from speakerid.data.manifest import Utterance
from speakerid.data.splits import chunked_epoch
from speakerid.errors import ConfigError


def _speechbrain_chunks(num_samples: int, seg_dur: float, rate: int = 16000) -> int:
    """``len(_get_chunks(seg_dur, id, duration))`` of SpeechBrain's ``voxceleb_prepare.py``:
    chunks [i * seg_dur, i * seg_dur + seg_dur) for i < int(duration / seg_dur)."""
    duration = num_samples / rate
    return int(duration / seg_dur)


def _row(name: str, samples: int) -> Utterance:
    return Utterance(name, f"{name}.wav", name[0], name[0], samples, 16000)


def test_rows_repeat_once_per_whole_chunk() -> None:
    lengths = [48000, 47999, 96001, 16000 * 8.2, 200_000, 1000]
    rows = [_row(f"{s}{i}", int(n)) for i, (s, n) in enumerate(zip("aabbcc", lengths, strict=True))]
    labels = np.array([[0, 1], [0, 0], [1, 1], [1, 0], [2, 1], [2, 0]])
    speeds = np.arange(6, dtype=np.float64)
    out, out_labels, out_speeds = chunked_epoch(rows, labels, speeds, 48000)
    expected = [max(1, _speechbrain_chunks(r.num_samples, 3.0)) for r in rows]
    assert expected == [1, 1, 2, 2, 4, 1]  # under one chunk: once (SpeechBrain: left out)
    assert [sum(u is r for u in out) for r in rows] == expected
    assert out == [r for r, k in zip(rows, expected, strict=True) for _ in range(k)]
    np.testing.assert_array_equal(out_labels, np.repeat(labels, expected, axis=0))
    np.testing.assert_array_equal(out_speeds, np.repeat(speeds, expected))
    assert chunked_epoch(rows, labels[:, 0], None, 48000)[2] is None
    with pytest.raises(ConfigError, match=r"data\.chunk_seconds must be above 0"):
        chunked_epoch(rows, labels, None, 0)


def test_the_epoch_holds_a_crop_per_chunk(tiny_corpus: SyntheticCorpus) -> None:
    plain = SpeakerDataModule(tiny_corpus, **TINY_DATA)
    plain.setup("fit")
    chunked = SpeakerDataModule(tiny_corpus, **{**TINY_DATA, "chunk_seconds": 0.5})
    chunked.setup("fit")
    assert chunked.train_rows == plain.train_rows  # the cohort and the classes are unchanged
    expected = sum(max(1, _speechbrain_chunks(u.num_samples, 0.5)) for u in plain.train_rows)
    assert expected > len(plain.train_rows)
    dataset = chunked.train_dataloader().dataset
    assert len(dataset) == expected
    assert len(plain.train_dataloader().dataset) == len(plain.train_rows)
    labels = np.concatenate([b.labels.numpy() for b in chunked.train_dataloader()])
    assert set(labels.tolist()) <= set(range(len(plain.speakers)))


def test_the_speechbrain_recipe_chunks_its_epoch_and_shards_refuse() -> None:
    assert compose_config("train", ["experiment=speechbrain_ecapa"]).data.chunk_seconds == 3.0
    assert compose_config("train", []).data.chunk_seconds is None
    dm = SpeakerDataModule(None, **{**TINY_DATA, "chunk_seconds": 3.0, "shards": {"dir": "/x"}})
    with pytest.raises(ConfigError, match=r"data\.chunk_seconds=null"):
        dm.train_dataloader()
