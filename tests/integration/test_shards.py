"""WebDataset shards: written from a corpus, read back exactly once per epoch across ranks and
workers, and trained from with the same batch contract as files."""

from collections import Counter

import numpy as np
import pytest
import torch
from tests.conftest import TINY_DATA, tiny_train_config

from speakerid.data.audio import read_audio
from speakerid.data.datamodule import SpeakerDataModule
from speakerid.data.shards import ShardDataset, write_shards
from speakerid.errors import ConfigError
from speakerid.train import train


def utterance_ids(dataset: ShardDataset, ranks: int, workers: int) -> list[str]:
    """Every utterance id that all readers (ranks x workers) of one epoch read."""
    out = []
    for rank in range(ranks):
        reader = ShardDataset(
            dataset.shard_dir,
            dataset.labels,
            dataset.crop_samples,
            dataset.seed,
            rank=rank,
            world_size=ranks,
        )
        reader.epoch = dataset.epoch
        for worker in range(workers):
            out += [record["utt_id"] for record, _ in reader.samples(worker, workers)]
    return out


@pytest.fixture(scope="module")
def shard_dirs(tiny_corpus, tmp_path_factory) -> dict:
    manifest = tiny_corpus.manifest()
    root = tmp_path_factory.mktemp("shards")
    return {
        "flac": (root / "flac", write_shards(manifest, root / "flac", shard_size=7)),
        "int16": (root / "int16", write_shards(manifest, root / "int16", 30, audio="int16")),
    }


@pytest.mark.parametrize(("kind", "shards"), [("flac", 9), ("int16", 2)])
def test_every_utterance_once_per_epoch_across_2_ranks_x_2_workers(
    tiny_corpus, shard_dirs: dict, kind: str, shards: int
) -> None:
    folder, index = shard_dirs[kind]
    assert len(index["shards"]) == shards  # int16: fewer shards (2) than readers (4)
    manifest = tiny_corpus.manifest()
    labels = {s: i for i, s in enumerate(manifest.speakers)}
    dataset = ShardDataset(folder, labels, crop_samples=8000)
    for epoch in range(2):
        dataset.set_epoch(epoch)
        seen = Counter(utterance_ids(dataset, ranks=2, workers=2))
        assert seen == Counter(u.utt_id for u in manifest)  # each exactly once


def test_shards_hold_the_audio_and_metadata(tiny_corpus, shard_dirs: dict) -> None:
    manifest = tiny_corpus.manifest()
    for kind in ("flac", "int16"):
        folder, _ = shard_dirs[kind]
        reader = ShardDataset(folder, {}, crop_samples=8000)
        for record, wav in reader.samples():
            row = manifest[manifest.index_of(record["utt_id"])]
            assert record["speaker"] == row.speaker and record["session"] == row.session
            original = read_audio(manifest.audio_path(row), 16000)
            np.testing.assert_allclose(wav, original, atol=1.5 / 32767)  # 16-bit both ways


def test_training_batches_from_shards(tiny_corpus, shard_dirs: dict) -> None:
    folder, _ = shard_dirs["flac"]
    settings = {**TINY_DATA, "num_workers": 2}
    dm = SpeakerDataModule(tiny_corpus, **settings, shards=str(folder))
    dm.setup("fit")
    loader = dm.train_dataloader()
    batches = list(loader)
    labels = torch.cat([b.labels for b in batches])
    trained = [u for u in dm.manifest if u.speaker in set(dm.speakers)]
    assert len(labels) == len(trained)  # training speakers only, each utterance once
    assert batches[0].wav.shape == (4, int(16000 * TINY_DATA["crop_seconds"]))
    assert set(labels.tolist()) == set(range(len(dm.speakers)))
    again = torch.cat([b.labels for b in loader])  # the next epoch of the same loader
    assert len(again) == len(labels) and not torch.equal(labels, again)  # reshuffled
    with pytest.raises(ConfigError, match="no shard index"):
        ShardDataset(folder.parent / "none", {}, 8000)


def test_a_run_trains_from_shards(tiny_data_dir, shard_dirs: dict, tmp_path) -> None:
    folder, _ = shard_dirs["flac"]
    metrics = train(tiny_train_config(tiny_data_dir, tmp_path, f"data.shards={folder}"))
    assert torch.isfinite(torch.tensor(metrics["train/loss"])) and 0 <= metrics["test/eer"] <= 1
