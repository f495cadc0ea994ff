"""WebDataset shards: written from a corpus, read back exactly once per epoch across ranks and
workers, resumed mid-epoch exactly, and trained from with the same batch contract as files."""

import itertools
import json
from collections import Counter

import numpy as np
import pytest
import torch
from omegaconf import open_dict
from tests.conftest import TINY_DATA, tiny_train_config

from speakerid.data.audio import read_audio
from speakerid.data.datamodule import SpeakerDataModule
from speakerid.data.shard_writer import write_shards
from speakerid.data.shards import INDEX, ShardDataset, ShardLoader
from speakerid.errors import ConfigError
from speakerid.train import train


def utterance_ids(folder, labels: dict, epoch: int, ranks: int, workers: int) -> list[str]:
    """Every utterance id that all readers (ranks x workers) of one epoch read."""
    out = []
    for rank in range(ranks):
        reader = ShardDataset(folder, labels, 8000, workers=workers, rank=rank, world_size=ranks)
        reader.set_epoch(epoch)
        for worker in range(workers):
            out += [record["utt_id"] for record, _ in reader.samples(reader.reader(worker))]
    return out


@pytest.fixture(scope="module")
def shard_dirs(tiny_corpus, tmp_path_factory) -> dict:
    manifest = tiny_corpus.manifest()
    root = tmp_path_factory.mktemp("shards")
    return {
        "flac": (root / "flac", write_shards(manifest, root / "flac", shard_size=7)),
        "int16": (root / "int16", write_shards(manifest, root / "int16", 30, audio="int16")),
    }


def _labels(dataset_speakers: list[str]) -> dict[str, int]:
    return {s: i for i, s in enumerate(dataset_speakers)}


@pytest.mark.parametrize(("kind", "shards"), [("flac", 9), ("int16", 2)])
def test_every_utterance_once_per_epoch_across_2_ranks_x_2_workers(
    tiny_corpus, shard_dirs: dict, kind: str, shards: int
) -> None:
    folder, index = shard_dirs[kind]
    assert len(index["shards"]) == shards  # int16: fewer shards (2) than readers (4)
    manifest = tiny_corpus.manifest()
    everyone = Counter(u.utt_id for u in manifest)
    for epoch in range(2):
        assert Counter(utterance_ids(folder, {}, epoch, ranks=2, workers=2)) == everyone
        trained = _labels(manifest.speakers[:6])  # a training stream keeps its speakers only
        expected = Counter(u.utt_id for u in manifest if u.speaker in trained)
        assert Counter(utterance_ids(folder, trained, epoch, 2, 2)) == expected


def test_real_loaders_of_2_ranks_x_2_workers_yield_each_utterance_once(
    tiny_corpus, shard_dirs: dict
) -> None:
    folder, _ = shard_dirs["int16"]  # 2 shards of 30: one for each rank, none for 2nd workers
    manifest = tiny_corpus.manifest()
    labels = _labels(manifest.speakers)
    seen: Counter = Counter()
    for rank in range(2):
        dataset = ShardDataset(folder, labels, 800, 1, workers=2, rank=rank, world_size=2)
        batches = list(ShardLoader(dataset, num_workers=2))
        assert len(batches) == dataset.batches_per_epoch()  # the same on both ranks
        seen.update(int(label) for _, label, _ in batches)
    assert dataset.dropped() == 0
    assert seen == Counter(labels[u.speaker] for u in manifest)


def _batches(loader, number=None) -> list[tuple]:
    it = iter(loader) if number is None else itertools.islice(loader, number)
    return [(wav.sum().item(), tuple(label.tolist())) for wav, label, _ in it]


@pytest.mark.parametrize("mode", ["epoch", "infinite"])
def test_resuming_mid_epoch_continues_the_same_stream(
    tiny_corpus, shard_dirs: dict, mode: str
) -> None:
    folder, _ = shard_dirs["flac"]  # 9 shards over 4 readers: workers hold unequal shares
    labels = _labels(tiny_corpus.manifest().speakers)
    settings = dict(batch_size=3, workers=2, rank=1, world_size=2, mode=mode, buffer=10)

    def loader() -> ShardLoader:
        return ShardLoader(ShardDataset(folder, labels, 800, seed=5, **settings), num_workers=2)

    number = None if mode == "epoch" else 25
    first = loader()
    epoch0, epoch1 = _batches(first, number), _batches(first, number)
    assert (epoch0 != epoch1) == (mode == "epoch")  # a reshuffle / infinite: the same start
    resumes = ((0, epoch0), (1, epoch1)) if mode == "epoch" else ((0, epoch0),)
    for resumed_epoch, expected in resumes:
        for done in (1, 4, 7):
            again = loader()
            again.resume_at({"epoch": resumed_epoch, "batches": done})
            rest = None if number is None else number - done
            assert _batches(again, rest) == expected[done:]


def test_every_rank_yields_the_same_number_of_batches(tiny_corpus, shard_dirs: dict) -> None:
    folder, index = shard_dirs["flac"]
    labels = _labels(tiny_corpus.manifest().speakers)
    lengths = set()
    for rank in range(2):
        dataset = ShardDataset(folder, labels, 800, 4, workers=2, rank=rank, world_size=2)
        lengths.add(len(list(ShardLoader(dataset, num_workers=2))))
        assert dataset.dropped() == index["utterances"] - 2 * 4 * dataset.batches_per_epoch()
    assert lengths == {dataset.batches_per_epoch()}


def test_shards_hold_the_audio_and_metadata(tiny_corpus, shard_dirs: dict) -> None:
    manifest = tiny_corpus.manifest()
    for kind in ("flac", "int16"):
        folder, index = shard_dirs[kind]
        assert sum(sum(s["speakers"].values()) for s in index["shards"]) == len(manifest)
        for record, wav in ShardDataset(folder, {}, crop_samples=8000).samples():
            row = manifest[manifest.index_of(record["utt_id"])]
            assert record["speaker"] == row.speaker and record["session"] == row.session
            original = read_audio(manifest.audio_path(row), 16000)
            np.testing.assert_allclose(wav, original, atol=1.5 / 32767)  # 16-bit both ways
    first = json.loads((shard_dirs["flac"][0] / INDEX).read_text())["shards"][0]["speakers"]
    assert len(first) > 1  # written shuffled: a shard mixes speakers


def test_training_batches_from_shards(tiny_corpus, shard_dirs: dict) -> None:
    folder, _ = shard_dirs["flac"]
    settings = {**TINY_DATA, "num_workers": 2, "batch_size": 1}
    dm = SpeakerDataModule(tiny_corpus, **settings, shards={"dir": str(folder)})
    dm.setup("fit")
    loader = dm.train_dataloader()
    batches = list(loader)
    labels = torch.cat([b.labels for b in batches])
    trained = [u for u in dm.manifest if u.speaker in set(dm.speakers)]
    assert len(labels) == len(trained) == len(loader)  # training speakers only, each once
    assert batches[0].wav.shape == (1, int(16000 * TINY_DATA["crop_seconds"]))
    assert set(labels.tolist()) == set(range(len(dm.speakers)))
    again = torch.cat([b.labels for b in loader])  # the next epoch of the same loader
    assert len(again) == len(labels) and not torch.equal(labels, again)  # reshuffled
    assert dm.state_dict() == {"train_position": {"epoch": 1, "batches": 0}}  # none trained


def test_bad_shard_settings_are_named(tiny_corpus, shard_dirs: dict, tmp_path) -> None:
    folder, _ = shard_dirs["flac"]
    with pytest.raises(ConfigError, match="no shard index"):
        ShardDataset(folder.parent / "none", {}, 8000)
    with pytest.raises(ConfigError, match=r"shards\.mode must be one of"):
        ShardDataset(folder, {}, 8000, mode="endless")
    one = tiny_corpus.manifest().speakers[:1]  # most shards hold none of its utterances
    with pytest.raises(ConfigError, match="no training utterance in this shard"):
        ShardDataset(folder, _labels(one), 8000, mode="infinite")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / INDEX).write_text((folder / INDEX).read_text())
    (broken / "shard-000000.tar").write_bytes(b"not a tar file")
    with pytest.raises(ConfigError, match=r"shard-000001.tar: missing \(8 of the 9 shards"):
        ShardDataset(broken, {}, 8000)
    for shard in folder.glob("shard-*.tar"):
        (broken / shard.name).write_bytes(b"not a tar file")
    with pytest.raises(ConfigError, match=r"shard-\d+.tar: unreadable shard"):
        list(ShardDataset(broken, {}, 8000).samples())


def test_a_run_trains_from_shards(tiny_data_dir, shard_dirs: dict, tmp_path) -> None:
    folder, _ = shard_dirs["flac"]
    metrics = train(tiny_train_config(tiny_data_dir, tmp_path, f"data.shards.dir={folder}"))
    assert torch.isfinite(torch.tensor(metrics["train/loss"])) and 0 <= metrics["test/eer"] <= 1


def test_an_endless_stream_trains_by_steps(tiny_data_dir, shard_dirs: dict, tmp_path) -> None:
    folder, _ = shard_dirs["flac"]
    extra = [f"data.shards.dir={folder}", "data.shards.mode=infinite", "test=false"]
    cfg = tiny_train_config(tiny_data_dir, tmp_path, *extra)
    with pytest.raises(ConfigError, match=r"set trainer\.max_steps"):
        train(cfg)
    with open_dict(cfg):
        cfg.trainer.max_steps = 4
        cfg.trainer.val_check_interval = 2
    metrics = train(cfg)
    assert 0 <= metrics["val/eer"] <= 1
    position = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert position["global_step"] == 4
