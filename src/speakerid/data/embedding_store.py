"""Embedding stores: every utterance of a corpus embedded once, kept in one folder.

```
<store>/
  embeddings.npy   (N, C, D) float32: C crops (1 for whole utterances) of each utterance
  index.tsv        utt_id, speaker, session: row i of the array
  meta.json        dim, crops, crop_seconds, source model, corpus root, trial list, ...
```

No pickle anywhere (``np.load(allow_pickle=False)``, TSV, JSON). A store is written by
:class:`StoreWriter` in ``<store>.partial/`` shard by shard — the array is a memory map filled in
place and ``progress.json`` lists the finished shards — and renamed to ``<store>`` when complete, so
an interrupted run resumes where it stopped (losing at most one shard) and a reader never sees a
half-written store. The original project's layout, one ``.npy`` of (C, D) per wav mirroring the
wav tree, is written by :meth:`EmbeddingStore.to_npy_tree` and read by :meth:`from_npy_tree`.
"""

import csv
import errno
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from speakerid.data.manifest import Utterance
from speakerid.errors import ConfigError
from speakerid.outputs import mark, remove_ours
from speakerid.utils.io import FileLock, atomic_open, write_json

ARRAY, INDEX, META, PROGRESS = "embeddings.npy", "index.tsv", "meta.json", "progress.json"
NPY_TREE = "speakerid-npy-tree.json"  # in a tree written by to_npy_tree: which store it mirrors


class EmbeddingStore:
    """A finished store, opened read-only (the array is memory-mapped).

    Example:
        >>> store = EmbeddingStore("logs/embed/runs/<time>/embeddings")  # doctest: +SKIP
        >>> store.mean().shape  # (N, D): L2(mean of crops), the enhancer's input  # doctest: +SKIP
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if self.root.name.endswith(".partial") or (self.root / PROGRESS).exists():
            raise ConfigError(
                f"{self.root}: an unfinished store (being written, or interrupted); rerun "
                "speakerid-embed with the same settings to finish it"
            )
        for name in (ARRAY, INDEX, META):
            if not (self.root / name).is_file():
                partial = Path(f"{self.root}.partial")
                hint = (
                    f" ({partial} holds an unfinished one: rerun to resume)"
                    if partial.exists()
                    else ""
                )
                raise ConfigError(f"{self.root}: not an embedding store, no {name}{hint}")
        self.meta = json.loads((self.root / META).read_text())
        with open(self.root / INDEX, newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))
        if not rows or rows[0] != ["utt_id", "speaker", "session"]:
            raise ConfigError(f"{self.root / INDEX}: header must be utt_id, speaker, session")
        bad = next((n for n, r in enumerate(rows, start=1) if len(r) != 3), None)
        if bad is not None:
            raise ConfigError(f"{self.root / INDEX}:{bad}: expected 3 tab-separated fields")
        self.ids = [r[0] for r in rows[1:]]
        self.speakers = [r[1] for r in rows[1:]]
        self.sessions = [r[2] for r in rows[1:]]
        try:
            self.array = np.load(self.root / ARRAY, mmap_mode="r", allow_pickle=False)
        except ValueError as err:
            raise ConfigError(f"{self.root / ARRAY}: not a plain .npy array ({err})") from None
        if self.array.ndim != 3 or len(self.array) != len(self.ids):
            raise ConfigError(
                f"{self.root}: array {self.array.shape} does not match {len(self.ids)} index rows"
            )
        self._row = {utt_id: i for i, utt_id in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return int(self.array.shape[2])

    @property
    def crops(self) -> int:
        return int(self.array.shape[1])

    def row_of(self, utt_id: str) -> int | None:
        return self._row.get(utt_id)

    @property
    def index(self) -> list[tuple[str, str, str]]:
        return list(zip(self.ids, self.speakers, self.sessions, strict=True))

    def utterances(self, rows: Sequence[int]) -> list[Utterance]:
        """Manifest-like rows of store rows (paths named ``<utt_id>.wav``, as lists write them)."""
        return [
            Utterance(self.ids[r], f"{self.ids[r]}.wav", self.speakers[r], self.sessions[r], 0, 0)
            for r in rows
        ]

    def mean(self, rows: Sequence[int] | None = None) -> Tensor:
        """(N,D) L2-normalized mean over crops of each utterance (all rows, or ``rows``)."""
        array = self.array if rows is None else self.array[np.asarray(rows, dtype=np.int64)]
        mean = torch.from_numpy(np.asarray(array, dtype=np.float32).mean(axis=1))
        return torch.nn.functional.normalize(mean, dim=1)

    def to_npy_tree(self, out_dir: str | Path) -> int:
        """Write ``<out_dir>/<utt_id>.npy`` of (C, D) per utterance (the original layout)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / NPY_TREE, {"store": str(self.root.resolve()), "meta": self.meta})
        for utt_id, embedding in zip(self.ids, self.array, strict=True):
            path = out_dir / f"{utt_id}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_open(path, "wb") as f:
                np.save(f, np.asarray(embedding, dtype=np.float32), allow_pickle=False)
        return len(self.ids)

    @classmethod
    def from_npy_tree(
        cls, npy_dir: str | Path, out: str | Path, rows: Sequence, meta: dict | None = None
    ) -> "EmbeddingStore":
        """Build a store from one ``.npy`` per utterance (``rows``: manifest rows naming them)."""
        npy_dir = Path(npy_dir)
        arrays = []
        for row in rows:
            path = npy_dir / f"{row.utt_id}.npy"
            if not path.is_file():
                raise ConfigError(f"{path}: embedding file not found")
            array = np.load(path, allow_pickle=False).astype(np.float32)
            arrays.append(array[None] if array.ndim == 1 else array)
        if len({a.shape for a in arrays}) > 1:
            raise ConfigError(f"{npy_dir}: the .npy files differ in shape")
        index = [(r.utt_id, r.speaker, r.session) for r in rows]
        crops, dim = arrays[0].shape
        writer = StoreWriter(out, index, crops, dim, meta or {}, len(rows))
        writer.write_shard(0, np.stack(arrays))
        return writer.finish()


class StoreWriter:
    """Fills ``<root>.partial/`` shard by shard, then renames it to ``<root>``.

    Opening a writer where a ``.partial`` folder with the same ``meta`` exists resumes it;
    a ``.partial`` folder from other settings is an error (delete it or choose another output),
    and so is a changed source model (``meta["source_sha256"]``): rows of two models never share a
    store. The writer holds ``<root>.lock`` from opening to :meth:`finish`, so a second writer of
    the same store is refused with one line (the lock dies with its process).

    Args:
        root: the store folder to create. If it holds a finished store with the same ``meta``
            there is nothing to do (:attr:`complete`); one with other settings is refused unless
            ``overwrite``; anything else there is refused.
        index: ``(utt_id, speaker, session)`` of each utterance, in store order.
        crops, dim: C and D.
        meta: settings recorded in ``meta.json``; also what a resumed run must match.
        shard_size: utterances per shard (the unit of work that an interruption can lose).
        overwrite: replace a finished store made with other settings (only a store: a folder
            holding anything else is always refused).

    Attributes:
        complete: the finished store already at ``root`` with these very settings (nothing to
            do), else None.
    """

    def __init__(
        self,
        root: str | Path,
        index: Sequence[tuple[str, str, str]],
        crops: int,
        dim: int,
        meta: dict,
        shard_size: int,
        overwrite: bool = False,
    ) -> None:
        self.root = Path(root)
        self.partial = Path(f"{self.root}.partial")
        self.shard_size = max(1, shard_size)
        self.count = len(index)
        meta = {**meta, "dim": dim, "crops": crops, "utterances": len(index)}
        try:
            self.root.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"{self.root.parent}: cannot write here ({err.strerror})") from None
        _finished(self.root, meta, overwrite)  # refused before the lock file is made
        self.lock = FileLock(f"{self.root}.lock", f"the store {self.root}")
        try:  # again, now that no other writer can finish it
            self.complete = _finished(self.root, meta, overwrite)
        except ConfigError:
            self.lock.release(remove=True)
            raise
        if self.complete is not None:
            self.done = set(range(self.num_shards))
            return
        if self.partial.exists():
            old = (
                json.loads((self.partial / META).read_text())
                if (self.partial / META).is_file()
                else None
            )
            if old != json.loads(json.dumps(meta)):
                self.lock.release()
                raise ConfigError(_resume_mismatch(self.partial, old, json.loads(json.dumps(meta))))
            self.array = np.load(self.partial / ARRAY, mmap_mode="r+", allow_pickle=False)
            self.done = set(json.loads((self.partial / PROGRESS).read_text()))
        else:
            self._create(index, meta, (len(index), crops, dim))
            self.array = np.load(self.partial / ARRAY, mmap_mode="r+", allow_pickle=False)
            self.done = set()

    def _create(self, index: Sequence[tuple[str, str, str]], meta: dict, shape: tuple) -> None:
        """Make ``<root>.partial`` (through ``.partial.tmp``, so it is complete or absent), with
        the array's disk blocks reserved now: a memory map over a sparse file that the disk
        cannot back dies of SIGBUS ("Bus error") at the first page it cannot write, hours in.

        Raises:
            ConfigError: the disk is full (or a quota reached): nothing of this run is left.
        """
        tmp = Path(f"{self.root}.partial.tmp")
        remove_ours(tmp)  # a run killed while creating it
        tmp.mkdir(parents=True)
        try:
            mark(tmp, "an unfinished embedding store")
            with open(tmp / INDEX, "w", newline="") as f:
                out = csv.writer(f, delimiter="\t", lineterminator="\n")
                out.writerow(["utt_id", "speaker", "session"])
                out.writerows(index)
            write_json(tmp / META, meta)
            write_json(tmp / PROGRESS, [])
            np.lib.format.open_memmap(tmp / ARRAY, "w+", np.float32, shape).flush()
            _reserve(tmp / ARRAY)
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # made just now, by this run
            self.lock.release(remove=True)
            need = 4 * int(np.prod(shape))
            size = f"{need / 1e9:.2f} GB" if need >= 1e9 else f"{need / 1e6:.2f} MB"
            raise ConfigError(
                f"{self.partial}: {os.strerror(err.errno)}: the store needs {size} "
                f"({' x '.join(map(str, shape))} float32); make room or choose another output"
            ) from None
        tmp.rename(self.partial)

    @property
    def num_shards(self) -> int:
        return -(-self.count // self.shard_size)

    def shard_rows(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.count))

    def pending(self) -> list[int]:
        """Shards still to compute."""
        return [s for s in range(self.num_shards) if s not in self.done]

    def write_shard(self, shard: int, embeddings: np.ndarray) -> None:
        """Store a shard's (n, C, D) embeddings and record it as done."""
        rows = self.shard_rows(shard)
        expected = (len(rows), *self.array.shape[1:])
        if embeddings.shape != expected:
            raise ValueError(f"shard {shard}: got {embeddings.shape}, expected {expected}")
        self.array[rows.start : rows.stop] = embeddings
        self.array.flush()
        self.done.add(shard)
        write_json(self.partial / PROGRESS, sorted(self.done))

    def finish(self) -> EmbeddingStore:
        """Rename the complete store into place and open it."""
        if self.complete is not None:
            self.lock.release(remove=True)
            return self.complete
        if self.pending():
            raise RuntimeError(f"{self.partial}: shards {self.pending()[:5]} are not written yet")
        del self.array
        (self.partial / PROGRESS).unlink()
        if self.root.exists():  # a store of ours that overwrite=true replaces (checked on open)
            old = Path(f"{self.root}.old")
            remove_ours(old)
            mark(self.root, "an embedding store being replaced")
            self.root.rename(old)
            self.partial.rename(self.root)
            shutil.rmtree(old)
        else:
            self.partial.rename(self.root)
        self.lock.release(remove=True)
        return EmbeddingStore(self.root)


def _finished(root: Path, meta: dict, overwrite: bool) -> EmbeddingStore | None:
    """The finished store at ``root`` if it was made with ``meta``; None if there is none or
    ``overwrite`` lets a store of other settings be replaced.

    Raises:
        ConfigError: ``root`` holds something that is not a store (the user's files, a file), or a
            store of other settings without ``overwrite``.
    """
    if not root.exists() or (root.is_dir() and not any(root.iterdir())):
        return None
    try:
        store = EmbeddingStore(root)
    except ConfigError:
        raise ConfigError(
            f"output={root}: exists and is not an embedding store (nothing there is touched): "
            "choose a new folder"
        ) from None
    wanted = json.loads(json.dumps(meta))
    if store.meta == wanted:
        return store
    if overwrite:
        return None
    changed = sorted(k for k in {*store.meta, *wanted} if store.meta.get(k) != wanted.get(k))
    raise ConfigError(
        f"output={root}: holds a finished store made with other settings ({', '.join(changed)}); "
        "choose another output, or overwrite=true to replace it"
    )


def _reserve(path: Path) -> None:
    """Allocate every block of ``path`` (``posix_fallocate``), so writing through a memory map
    of it never finds the disk full."""
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as err:  # a file system without it: the sparse file, as before
            if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise


def _resume_mismatch(partial: Path, old: dict | None, new: dict) -> str:
    """Why an unfinished store cannot be resumed with ``new`` settings."""
    if old and old.get("source_sha256") != new.get("source_sha256"):
        return (
            f"{partial}: an unfinished store from {old.get('source')} with other weights (sha256 "
            f"{str(old.get('source_sha256'))[:12]}, now {str(new.get('source_sha256'))[:12]}): the "
            "checkpoint changed since it was started; delete it to start over"
        )
    changed = sorted(k for k in {*(old or {}), *new} if (old or {}).get(k) != new.get(k))
    return (
        f"{partial}: an unfinished store from other settings ({', '.join(changed)}); delete it to "
        "start over"
    )
