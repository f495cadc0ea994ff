"""WebDataset tar shards read back for training (``shard_writer.write_shards`` writes them).

:class:`ShardDataset` streams them back for training. Each (rank, data-loader worker) is one
*reader*; in every pass over the data the shards are dealt to the readers in a seeded order, so
each shard is read by exactly one reader per pass (readers left without a shard yield nothing). A
reader reads its shards sequentially in groups of about ``buffer`` utterances, shuffles each group,
then crops and augments every utterance with a generator seeded by its position in the stream.
Because every count is known from the index, any position of the stream can be reached without
reading the shards before it: resumption is exact mid-epoch, and every rank yields the same
number of batches. Two modes:

- ``epoch``: a Lightning epoch is one pass; each worker yields whole batches only, and ranks are
  cut to the same number of batches (the few dropped utterances are logged).
- ``infinite``: one endless stream of passes, for step-based training (``trainer.max_steps``,
  an integer ``trainer.val_check_interval``).

Batches have the same contract as the file-backed data module's.
"""

import io
import itertools
import json
import logging
import math
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch.distributed as dist
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from speakerid.errors import ConfigError

log = logging.getLogger(__name__)

INDEX = "shards.json"
MODES = ("epoch", "infinite")


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
    index = json.loads(path.read_text())
    if any("speakers" not in s for s in index["shards"]):
        raise ConfigError(f"{path}: written by an older speakerid; write the shards again")
    return index


def consumed_batches(full: list[float], batches: int) -> tuple[list[int], int]:
    """(batches taken from each worker, the worker asked next) after a DataLoader has yielded
    ``batches`` batches.

    The loader asks its workers in turn, passing over those that have run out (``full[w]``
    batches each, ``math.inf`` for an endless stream); a worker with none is never asked.

    >>> consumed_batches([3, 1, 0], 3)
    ([2, 1, 0], 0)
    >>> consumed_batches([math.inf, math.inf, 0], 5)
    ([3, 2, 0], 1)
    """
    workers = len(full)
    active = [w for w, n in enumerate(full) if n > 0]
    if not active:
        return [0] * workers, 0
    if all(full[w] == math.inf for w in active):  # closed form for endless streams
        taken = [0] * workers
        for i, w in enumerate(active):
            taken[w] = len(range(i, batches, len(active)))
        return taken, active[batches % len(active)]
    taken, w = [0] * workers, 0
    for _ in range(min(batches, int(sum(full)))):
        while taken[w] >= full[w]:
            w = (w + 1) % workers
        taken[w] += 1
        w = (w + 1) % workers
    for _ in range(workers):  # the next worker that still has batches
        if taken[w] < full[w]:
            break
        w = (w + 1) % workers
    return taken, w


class ShardDataset(IterableDataset):
    """Random fixed-length crops streamed from tar shards, for training.

    Args:
        shard_dir: the folder with ``shards.json``.
        labels: speaker -> class index; utterances of other speakers are skipped.
        crop_samples: samples per crop (shorter utterances are repeated to fill it).
        batch_size: the loader's batch size (the dataset sizes each worker's share in batches).
        workers: the loader's ``num_workers`` (0: read in the main process).
        seed: seeds shard order, shuffling, crops and augmentation.
        buffer: utterances shuffled together (a group of consecutive shards of a reader).
        augment: ``(wav, rng) -> wav``, or None.
        mode: ``epoch`` (a pass per epoch) or ``infinite`` (one endless epoch).
        rank, world_size: this process and the number of processes (default: torch.distributed's).

    Set ``epoch`` and ``start_batch`` (batches of that epoch already trained) before iterating.
    """

    def __init__(
        self,
        shard_dir: str | Path,
        labels: dict[str, int],
        crop_samples: int,
        batch_size: int = 1,
        workers: int = 0,
        seed: int = 0,
        buffer: int = 1000,
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        mode: str = "epoch",
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"data.shards.mode must be one of {MODES}, got {mode!r}")
        self.shard_dir = Path(shard_dir)
        self.index = read_index(shard_dir)
        self.labels = labels
        self.crop_samples = crop_samples
        self.batch_size = batch_size
        self.workers = workers
        self.seed = seed
        self.buffer = buffer
        self.augment = augment
        self.mode = mode
        distributed = dist.is_available() and dist.is_initialized()
        self.rank = rank if rank is not None else (dist.get_rank() if distributed else 0)
        self.world_size = world_size or (dist.get_world_size() if distributed else 1)
        self.epoch = 0
        self.start_batch = 0
        shards = self.index["shards"]
        missing = [s["file"] for s in shards if not (self.shard_dir / s["file"]).is_file()]
        if missing:
            raise ConfigError(
                f"{self.shard_dir / missing[0]}: missing ({len(missing)} of the {len(shards)} "
                f"shards in {INDEX} are)"
            )
        self._counts = [sum(n for s, n in sh["speakers"].items() if s in labels) for sh in shards]
        mean_size = max(1, self.index["utterances"] // max(1, len(shards)))
        self._group_shards = max(1, round(buffer / mean_size))
        if mode == "infinite" and labels and not all(self._counts):
            empty = shards[self._counts.index(0)]["file"]
            raise ConfigError(
                f"{self.shard_dir / empty}: no training utterance in this shard; an endless "
                "stream needs every shard to feed it (write the shards again: they are shuffled)"
            )

    # -- the plan: which utterances each reader streams, from the index alone ----------------

    @property
    def readers(self) -> int:
        return self.world_size * max(1, self.workers)

    def reader(self, worker: int, rank: int | None = None) -> int:
        """The reader number of a worker of a rank: ranks first, so that with few shards every
        rank still gets some."""
        return worker * self.world_size + (self.rank if rank is None else rank)

    def reader_shards(self, epoch: int, reader: int) -> list[int]:
        """The shards (index positions) one reader reads in pass ``epoch``: dealt in turn from a
        seeded order."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.index["shards"]))
        return [int(i) for i in order[reader :: self.readers]]

    def _groups(self, epoch: int, reader: int) -> list[list[int]]:
        mine = self.reader_shards(epoch, reader)
        return [mine[i : i + self._group_shards] for i in range(0, len(mine), self._group_shards)]

    def _pass_items(self, epoch: int, reader: int) -> int:
        return sum(self._counts[i] for i in self.reader_shards(epoch, reader))

    def _full_batches(self, rank: int, epoch: int) -> list[float]:
        """Per worker of ``rank``: whole batches in a pass (epoch mode) or inf/0 (infinite)."""
        workers = max(1, self.workers)
        out: list[float] = []
        for worker in range(workers):
            reader = self.reader(worker, rank)
            if self.mode == "infinite":
                out.append(math.inf if len(range(reader, len(self._counts), self.readers)) else 0)
            else:
                out.append(self._pass_items(epoch, reader) // self.batch_size)
        return out

    def batches_per_epoch(self, epoch: int | None = None) -> int:
        """Batches every rank yields in an epoch: the fewest any rank has whole batches for."""
        epoch = self.epoch if epoch is None else epoch
        return int(min(sum(self._full_batches(r, epoch)) for r in range(self.world_size)))

    def dropped(self, epoch: int | None = None) -> int:
        """Training utterances of a pass that epoch mode leaves out (whole batches, equal ranks)."""
        epoch = self.epoch if epoch is None else epoch
        total = sum(self._counts)
        return total - self.world_size * self.batches_per_epoch(epoch) * self.batch_size

    def __len__(self) -> int:
        if self.mode == "infinite":
            raise TypeError("an endless shard stream has no length")
        return self.batches_per_epoch() * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    # -- the stream ------------------------------------------------------------------------

    def _span(self, worker: int) -> tuple[int, int, int | None]:
        """(reader, first item, number of items) of this worker in the current epoch.

        A fresh loader asks worker 0 first, so after resuming the workers take over the roles
        (readers) in turn from the one an uninterrupted loader would have asked next."""
        full = self._full_batches(self.rank, self.epoch)
        done, next_worker = consumed_batches(full, self.start_batch)
        role = (next_worker + worker) % len(full)
        reader = self.reader(role)
        if self.mode == "infinite":
            return reader, done[role] * self.batch_size, None
        total = consumed_batches(full, self.batches_per_epoch())[0][role]
        return reader, done[role] * self.batch_size, (total - done[role]) * self.batch_size

    def __iter__(self) -> Iterator[tuple[np.ndarray, int, int]]:
        # not a generator: the span is fixed when the loader asks, before it resets start_batch
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 0)
        if workers != self.workers:
            raise ConfigError(f"ShardDataset made for {self.workers} workers, read by {workers}")
        reader, start, number = self._span(worker)
        first_pass = self.epoch if self.mode == "epoch" else 0
        stream = self.stream(reader, first_pass, start)
        if number is not None:
            stream = itertools.islice(stream, number)
        return (self._crop(record, sample, rng) for _, record, sample, rng in stream)

    def stream(
        self, reader: int, first_pass: int = 0, start: int = 0
    ) -> Iterator[tuple[int, dict, dict, np.random.Generator]]:
        """(pass, record, encoded audio, generator) of one reader from item ``start`` on:
        passes one after another (epoch mode reads only its first), groups of shards shuffled.
        Whole passes and groups before ``start`` are skipped from the index, unread."""
        for epoch in itertools.count(first_pass):
            if not self._pass_items(epoch, reader):  # no shard (or no training utterance)
                return
            for number, group in enumerate(self._groups(epoch, reader)):
                size = sum(self._counts[i] for i in group)
                if start >= size:
                    start -= size
                    continue
                items = [
                    (record, sample)
                    for i in group
                    for record, sample in self._samples(i)
                    if record["speaker"] in self.labels
                ]
                order = np.random.default_rng([self.seed, epoch, reader, number])
                for j, k in enumerate(order.permutation(len(items))[start:], start):
                    record, sample = items[k]
                    rng = np.random.default_rng([self.seed, epoch, reader, number, j])
                    yield epoch, record, sample, rng
                start = 0

    def _samples(self, shard: int) -> Iterator[tuple[dict, dict]]:
        path = self.shard_dir / self.index["shards"][shard]["file"]
        try:
            for sample in _read_shard(str(path)):
                yield json.loads(sample["json"]), sample
        except (OSError, tarfile.TarError, KeyError, ValueError) as error:
            raise ConfigError(f"{path}: unreadable shard ({error})") from error

    def samples(self, reader: int = 0) -> Iterator[tuple[dict, np.ndarray]]:
        """(record, waveform) of every utterance one reader reads in pass ``epoch``, in the
        order it streams them (all speakers when ``labels`` is empty)."""
        if not self.labels:
            for shard in self.reader_shards(self.epoch, reader):
                for record, sample in self._samples(shard):
                    yield record, _decode(sample)
            return
        items = self._pass_items(self.epoch, reader)
        for _, record, sample, _ in itertools.islice(self.stream(reader, self.epoch), items):
            yield record, _decode(sample)

    def _crop(self, record: dict, sample: dict, rng) -> tuple[np.ndarray, int, int]:
        wav = _decode(sample)
        if len(wav) >= self.crop_samples:
            offset = int(rng.integers(len(wav) - self.crop_samples + 1))
            wav = wav[offset : offset + self.crop_samples]
        else:
            wav = np.resize(wav, self.crop_samples)
        if self.augment is not None:
            wav = self.augment(wav, rng)
        return np.ascontiguousarray(wav, dtype=np.float32), self.labels[record["speaker"]], -1


class ShardLoader(DataLoader):
    """The training DataLoader over a :class:`ShardDataset`, resumable like
    :class:`speakerid.data.samplers.ResumableLoader` (``position`` / ``resume_at``)."""

    def __init__(self, dataset: ShardDataset, **kwargs) -> None:
        # workers are started per epoch: they read the epoch and start position from the dataset
        super().__init__(dataset, batch_size=dataset.batch_size, **kwargs)
        self.next_epoch = 0
        self.finished_batches = 0

    def position(self) -> dict:
        dataset: ShardDataset = self.dataset  # type: ignore[assignment]
        epoch, done = dataset.epoch, self.finished_batches
        if dataset.mode == "epoch" and done >= dataset.batches_per_epoch():
            epoch, done = epoch + 1, 0
        return {"epoch": epoch, "batches": done}

    def resume_at(self, state: dict) -> None:
        self.next_epoch = int(state["epoch"])
        self.dataset.start_batch = int(state["batches"])  # type: ignore[attr-defined]

    def __iter__(self):
        dataset: ShardDataset = self.dataset  # type: ignore[assignment]
        if dataset.mode == "epoch":
            dataset.set_epoch(self.next_epoch)
            self.next_epoch += 1
            left_out = dataset.dropped() if dataset.start_batch == 0 else 0
            if left_out:
                log.info("shards: %d utterances left out of epoch %d", left_out, dataset.epoch)
        self.finished_batches = dataset.start_batch
        iterator = super().__iter__()
        dataset.start_batch = 0  # the workers took their copy; the next epoch starts at 0
        return iterator
