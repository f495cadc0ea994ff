"""Voiceprint stores: enrolled speakers kept once, for ``speakerid-identify store=`` and
``speakerid-search``.

```
<store>/
  voiceprints.npz   names (C,), means (C,D) float64, counts (C,), meta (JSON text)
  voiceprints.lock  held while a command changes the store
  .speakerid        the marker: speakerid made this folder
```

A speaker's voiceprint is the mean of its L2-normalized enrolment embeddings with their count,
so enrolling more files later gives the voiceprint all of them at once would have; the speaker
model is that mean L2-normalized (:func:`speakerid.metrics.identification.centroids`). The store
belongs to one model, named by the sha256 of its weights (a checkpoint whose stored thresholds
were rewritten is the same model); a store is never used with another. The file is rewritten
atomically under the lock (no pickle: ``np.load(allow_pickle=False)``), so readers need no lock
and two enrolments never lose each other's speakers.
"""

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn.functional import normalize

from speakerid.errors import ConfigError
from speakerid.outputs import MARKER, claim_folder, mark
from speakerid.utils.io import FileLock, atomic_path

FILE, LOCK = "voiceprints.npz", "voiceprints.lock"
FORMAT = 1
RESERVED = ("unknown", "no speech")  # labels of what no enrolled speaker owns


def weights_sha256(state_dict: dict) -> str:
    """sha256 of a model's weights (names, dtypes, shapes and bytes, in name order): the identity
    of the model a store belongs to, whatever else its checkpoint file holds."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name]
        if not isinstance(tensor, Tensor):
            continue
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Voiceprints:
    """The speakers of a store: ``means`` (C,D) of normalized embeddings, ``counts`` (C,)."""

    names: tuple[str, ...]
    means: np.ndarray
    counts: np.ndarray
    meta: dict

    def models(self) -> Tensor:
        """(C,D) speaker models: each mean L2-normalized."""
        return normalize(torch.from_numpy(self.means).float(), dim=1)


class VoiceprintStore:
    """A voiceprint store folder (made by the first :meth:`add`).

    Example:
        >>> store = VoiceprintStore("voices")  # doctest: +SKIP
        >>> meta = {"model_sha256": sha, "model": "m.ckpt"}  # doctest: +SKIP
        >>> store.add({"ann": embeddings}, meta)  # (N,D) normalized  # doctest: +SKIP
        >>> store.read().names  # doctest: +SKIP
        ('ann',)
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.file = self.root / FILE

    def exists(self) -> bool:
        return self.file.is_file()

    def read(self) -> Voiceprints:
        """The store's speakers (one line naming the store when it is missing or damaged)."""
        if not self.file.is_file():
            hint = "" if self.root.is_dir() else " (no such folder)"
            raise ConfigError(
                f"store={self.root}: no voiceprint store here{hint}; make one with "
                "speakerid-enroll ckpt_path=... store=... enrol_dir=..."
            )
        try:
            with np.load(self.file, allow_pickle=False) as data:
                names = tuple(str(n) for n in data["names"])
                means, counts = data["means"].astype(np.float64), data["counts"].astype(np.int64)
                meta = json.loads(str(data["meta"]))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
            # numpy reads a file that is no .npz archive as a pickle, and refuses it
            reason = "not an .npz archive" if "pickle" in str(err) else str(err)[:200]
            raise ConfigError(f"{self.file}: damaged voiceprint store ({reason})") from None
        if (
            not isinstance(meta, dict)
            or meta.get("format") != FORMAT
            or means.ndim != 2
            or len(means) != len(names)
            or counts.shape != (len(names),)
            or not np.isfinite(means).all()
        ):
            raise ConfigError(f"{self.file}: damaged voiceprint store (inconsistent arrays)")
        return Voiceprints(names, means, counts, meta)

    def check_model(self, prints: Voiceprints, sha256: str, model: str) -> None:
        """Refuse a model other than the store's."""
        if prints.meta.get("model_sha256") != sha256:
            raise ConfigError(
                f"store={self.root}: made with another model ({prints.meta.get('model')}, "
                f"weights sha256 {str(prints.meta.get('model_sha256'))[:12]}), not {model} "
                f"({sha256[:12]}); voiceprints of one model mean nothing to another: use that "
                "model, or enrol into a new store"
            )

    def add(self, embeddings: dict[str, Tensor], model_meta: dict) -> Voiceprints:
        """Enrol ``embeddings`` (speaker -> (N,D) normalized embeddings): a new speaker gets
        their mean, a known one the mean of all its embeddings so far. Returns the new state."""
        for name in embeddings:
            check_name(name)
        if not self.exists():
            claim_folder(self.root, "store", lambda folder: (folder / MARKER).is_file())
            self.root.mkdir(parents=True, exist_ok=True)
            mark(self.root, "voiceprint store")
        with self._locked():
            if self.exists():
                prints = self.read()
                self.check_model(prints, model_meta["model_sha256"], model_meta["model"])
            else:
                dim = next(iter(embeddings.values())).shape[1]
                prints = Voiceprints((), np.zeros((0, dim)), np.zeros(0, np.int64), {})
            names, means, counts = list(prints.names), list(prints.means), list(prints.counts)
            for name, rows in embeddings.items():
                rows = rows.double().numpy()
                if name in names:
                    i = names.index(name)
                    total = means[i] * counts[i] + rows.sum(axis=0)
                    counts[i] += len(rows)
                    means[i] = total / counts[i]
                else:
                    names.append(name)
                    means.append(rows.mean(axis=0))
                    counts.append(len(rows))
            meta = {**prints.meta, **model_meta, "format": FORMAT}
            new = Voiceprints(tuple(names), np.stack(means), np.array(counts, np.int64), meta)
            self._write(new)
        return new

    def remove(self, names: list[str]) -> Voiceprints:
        """Remove enrolled speakers (an unknown name is refused, nothing removed)."""
        with self._locked():
            prints = self.read()
            unknown = [n for n in names if n not in prints.names]
            if unknown:
                raise ConfigError(
                    f"store={self.root}: no speaker {unknown[0]!r} enrolled "
                    f"(enrolled: {', '.join(prints.names[:10]) or 'none'})"
                )
            keep = [i for i, n in enumerate(prints.names) if n not in names]
            new = Voiceprints(
                tuple(prints.names[i] for i in keep),
                prints.means[keep],
                prints.counts[keep],
                prints.meta,
            )
            self._write(new)
        return new

    def _locked(self) -> FileLock:
        return _Held(FileLock(self.root / LOCK, f"the voiceprint store {self.root}", wait=True))

    def _write(self, prints: Voiceprints) -> None:
        with atomic_path(self.file) as tmp, open(tmp, "wb") as out:
            np.savez(
                out,
                names=np.array(prints.names, dtype=str),
                means=prints.means.astype(np.float64),
                counts=prints.counts.astype(np.int64),
                meta=np.array(json.dumps(prints.meta, sort_keys=True)),
            )


class _Held:
    """A :class:`FileLock` as a context manager (released however the block ends)."""

    def __init__(self, lock: FileLock) -> None:
        self.lock = lock

    def __enter__(self) -> FileLock:
        return self.lock

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def check_name(name: str) -> str:
    """A speaker name a store and an RTTM file can hold: not empty, no whitespace, not one of
    the labels of what no speaker owns."""
    if not name or any(c.isspace() for c in name) or not name.isprintable():
        raise ConfigError(
            f"speaker name {name!r}: must be non-empty, printable, without spaces (RTTM fields)"
        )
    if name in RESERVED:
        raise ConfigError(
            f"speaker name {name!r}: the label of what no enrolled speaker matches; choose another"
        )
    return name
