"""Manifests: one row per utterance, cached on disk as TSV next to a fingerprint of the corpus."""

import csv
import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from speakerid.errors import CorpusError
from speakerid.utils.io import atomic_open

COLUMNS = (
    "utt_id",
    "path",
    "speaker",
    "session",
    "num_samples",
    "sample_rate",
    "gender",
    "language",
    "age",
    "accent",
)


class Utterance(NamedTuple):
    """A manifest row: ``path`` relative to the corpus root; ``utt_id`` ``speaker/session/name``."""

    utt_id: str
    path: str
    speaker: str
    session: str
    num_samples: int
    sample_rate: int
    gender: str = ""
    language: str = ""
    age: str = ""  # as the corpus states it: an age range (VoxForge) or decade (CommonVoice)
    accent: str = ""  # accent or dialect, free text

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate


class Manifest(Sequence[Utterance]):
    """An ordered list of utterances of one corpus, with lookups by path and speaker."""

    def __init__(self, root: Path, rows: Iterable[Utterance]) -> None:
        self.root = Path(root)
        self.rows = list(rows)
        self._by_id = {row.utt_id: i for i, row in enumerate(self.rows)}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):  # type: ignore[override]
        return self.rows[index]

    def index_of(self, utt_id: str) -> int | None:
        """Row of the utterance ``utt_id`` (``speaker/session/name``), or None."""
        return self._by_id.get(utt_id)

    @property
    def speakers(self) -> list[str]:
        return sorted({row.speaker for row in self.rows})

    def audio_path(self, row: Utterance) -> Path:
        return self.root / row.path

    def save(self, path: Path, fingerprint: dict) -> None:
        """Write the rows as TSV and the fingerprint beside them (``.json``), atomically."""
        with atomic_open(path, "w") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            writer.writerow(COLUMNS)
            writer.writerows(self.rows)
        with atomic_open(path.with_suffix(".json")) as f:
            json.dump(fingerprint, f)

    @classmethod
    def load(cls, root: Path, path: Path, fingerprint: dict) -> "Manifest | None":
        """The cached manifest at ``path``, or None if absent or built from other contents."""
        meta = path.with_suffix(".json")
        if not (path.is_file() and meta.is_file()) or json.loads(meta.read_text()) != fingerprint:
            return None
        with open(path, newline="") as f:
            reader = csv.reader(f, delimiter="\t")
            if tuple(next(reader, ())) != COLUMNS:
                return None
            rows = [
                Utterance(u, p, s, se, int(n), int(sr), *rest)
                for u, p, s, se, n, sr, *rest in reader
            ]
        return cls(root, rows)


def cache_path(cache_dir: str | Path, root: Path, reader: str) -> Path:
    """Where the manifest of corpus ``root`` read by ``reader`` is cached."""
    key = hashlib.sha1(f"{reader}:{root.resolve()}".encode()).hexdigest()[:16]
    return Path(cache_dir) / "manifests" / f"{reader}-{key}.tsv"


def require_nonempty(manifest: Manifest, what: str) -> Manifest:
    if not manifest.rows:
        raise CorpusError(f"{manifest.root}: no utterances found ({what})")
    return manifest
