"""WebDataset tar shards: a corpus as a few large sequential files, for fast streaming.

``write_shards`` packs every utterance of a manifest into ``shard-000000.tar``, ... (audio as FLAC
or raw int16, plus a JSON record of speaker, session and metadata) and writes ``shards.json``
(the shard files, their utterance counts, the speakers). :class:`ShardDataset` streams them back
for training: the shards are split between processes (ranks) and data-loader workers — each shard
read by exactly one reader per epoch; readers left without a shard simply yield nothing — then
samples are shuffled in a buffer, cropped and augmented, with every random choice seeded by (seed,
epoch, reader), and batches have the same contract as the file-backed data module's.
"""

import io
import json
import tarfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch.distributed as dist
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from speakerid.data.audio import read_audio
from speakerid.data.manifest import Manifest
from speakerid.errors import ConfigError
from speakerid.utils.io import atomic_path, write_json

INDEX = "shards.json"


def write_shards(
    manifest: Manifest, out_dir: str | Path, shard_size: int = 1000, audio: str = "flac"
) -> dict:
    """Pack ``manifest`` into tar shards of ``shard_size`` utterances; return the shard index."""
    if audio not in ("flac", "int16"):
        raise ConfigError(f"audio must be 'flac' or 'int16', got {audio!r}")
    if shard_size < 1:
        raise ConfigError(f"shard_size must be >= 1, got {shard_size}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shards = []
    rows = list(manifest)
    for number, start in enumerate(range(0, len(rows), shard_size)):
        name = f"shard-{number:06d}.tar"
        chunk = rows[start : start + shard_size]
        with atomic_path(out_dir / name) as tmp, wds.TarWriter(str(tmp)) as sink:
            for row in chunk:
                wav = read_audio(manifest.audio_path(row), row.sample_rate)
                sink.write(
                    {
                        "__key__": row.utt_id.replace("/", "__").replace(".", "_"),
                        audio: _encode(wav, row.sample_rate, audio),
                        "json": json.dumps(row._asdict()).encode(),
                    }
                )
        shards.append({"file": name, "utterances": len(chunk)})
    index = {
        "shards": shards,
        "utterances": len(rows),
        "speakers": manifest.speakers,
        "speaker_utterances": dict(Counter(r.speaker for r in rows)),
        "audio": audio,
        "corpus_root": str(manifest.root),
    }
    write_json(out_dir / INDEX, index)
    return index


def _encode(wav: np.ndarray, rate: int, audio: str) -> bytes:
    if audio == "int16":
        return (np.clip(wav, -1, 1) * 32767).astype("<i2").tobytes()
    buffer = io.BytesIO()
    sf.write(buffer, wav, rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def _decode(sample: dict) -> np.ndarray:
    if "flac" in sample:
        wav, _ = sf.read(io.BytesIO(sample["flac"]), dtype="float32")
        return wav
    return np.frombuffer(sample["int16"], dtype="<i2").astype(np.float32) / 32767


def _read_shard(path: str) -> Iterator[dict]:
    """The samples of one tar shard in order (files sharing a key before the first dot form a
    sample, as in WebDataset), read sequentially."""
    with tarfile.open(path) as tar:
        sample: dict = {}
        for member in tar:
            if not member.isfile():
                continue
            key, _, ext = member.name.partition(".")
            if sample and sample["__key__"] != key:
                yield sample
                sample = {}
            sample["__key__"] = key
            sample[ext] = tar.extractfile(member).read()
        if sample:
            yield sample


def read_index(shard_dir: str | Path) -> dict:
    path = Path(shard_dir) / INDEX
    if not path.is_file():
        raise ConfigError(f"{path}: no shard index (write shards with speakerid-prepare shards)")
    return json.loads(path.read_text())


class ShardDataset(IterableDataset):
    """Random fixed-length crops streamed from tar shards, for training.

    Args:
        shard_dir: the folder with ``shards.json``.
        labels: speaker -> class index; utterances of other speakers are skipped.
        crop_samples: samples per crop (shorter utterances are repeated to fill it).
        seed: with the epoch and the reader, seeds shard order, buffer shuffle, crops, augment.
        buffer: shuffle buffer size (samples).
        augment: ``(wav, rng) -> wav``, or None.
        rank, world_size: this process and the number of processes (default: torch.distributed's).
    """

    def __init__(
        self,
        shard_dir: str | Path,
        labels: dict[str, int],
        crop_samples: int,
        seed: int = 0,
        buffer: int = 1000,
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        self.shard_dir = Path(shard_dir)
        self.index = read_index(shard_dir)
        self.labels = labels
        self.crop_samples = crop_samples
        self.seed = seed
        self.buffer = buffer
        self.augment = augment
        distributed = dist.is_available() and dist.is_initialized()
        self.rank = rank if rank is not None else (dist.get_rank() if distributed else 0)
        self.world_size = world_size or (dist.get_world_size() if distributed else 1)
        self.epoch = 0

    def __len__(self) -> int:
        """This process's share of the training utterances (an estimate per rank)."""
        counts = self.index["speaker_utterances"]
        total = sum(counts.get(s, 0) for s in self.labels)
        return -(-total // self.world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def my_shards(self, worker: int, workers: int) -> list[str]:
        """The shards this (rank, worker) reads this epoch: a seeded order, dealt round-robin."""
        files = [s["file"] for s in self.index["shards"]]
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(files))
        reader, readers = self.rank * workers + worker, self.world_size * workers
        return [str(self.shard_dir / files[i]) for i in order[reader::readers]]

    def samples(self, worker: int = 0, workers: int = 1) -> Iterator[tuple[dict, np.ndarray]]:
        """(record, waveform) of every utterance in this reader's shards, unshuffled."""
        urls = self.my_shards(worker, workers)
        for url in urls:  # read here, not through wds.WebDataset, which splits by worker again
            for sample in _read_shard(url):
                yield json.loads(sample["json"]), _decode(sample)

    def __iter__(self) -> Iterator[tuple[np.ndarray, int, int]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker])
        self.epoch += 1  # each iteration of the loader is one epoch
        pool: list[tuple[dict, np.ndarray]] = []
        for item in self.samples(worker, workers):
            if item[0]["speaker"] not in self.labels:
                continue
            pool.append(item)
            if len(pool) >= self.buffer:
                yield self._crop(pool.pop(int(rng.integers(len(pool)))), rng)
        rng.shuffle(pool)
        for item in pool:
            yield self._crop(item, rng)

    def _crop(self, item: tuple[dict, np.ndarray], rng) -> tuple[np.ndarray, int, int]:
        record, wav = item
        if len(wav) >= self.crop_samples:
            start = int(rng.integers(len(wav) - self.crop_samples + 1))
            wav = wav[start : start + self.crop_samples]
        else:
            wav = np.resize(wav, self.crop_samples)
        if self.augment is not None:
            wav = self.augment(wav, rng)
        return np.ascontiguousarray(wav, dtype=np.float32), self.labels[record["speaker"]], -1
