"""The enhancement project's four list files, generated with a seed and read with line-numbered
errors. Paths are written as in VoxCeleb's lists (``id10001/<session>/00001.wav``: the utterance
id plus the file's suffix) and read back to utterance ids.

- normal, ``spk path``: every given utterance;
- test, ``1|0 path path``: per file, ``same`` partners of its speaker and ``different`` of others;
- triplet, ``spk path other_spk``: per file, a random other speaker;
- distribution, ``spk f1 f2 same_session``: per file, up to ``same`` partners of its speaker from
  its own session (flag 1) and as many from its other sessions (flag 0).
"""

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from speakerid.data.manifest import Utterance
from speakerid.data.trials import check_inside, list_lines
from speakerid.errors import ListFileError
from speakerid.utils.io import atomic_open

KINDS = {"normal": 2, "test": 3, "triplet": 3, "distribution": 4}


def list_path(row: Utterance) -> str:
    """How a list names an utterance: its id plus its file's suffix."""
    return row.utt_id + PurePosixPath(row.path).suffix


def utt_id(path: str) -> str:
    """The utterance id a list path names."""
    return str(PurePosixPath(path).with_suffix(""))


def generate(
    kind: str, rows: Sequence[Utterance], seed: int, same: int = 4, different: int = 4
) -> list[tuple]:
    """Lines of a list of ``kind`` over ``rows`` (tuples of fields)."""
    if kind not in KINDS:
        raise ValueError(f"unknown list kind {kind!r}; choose from {sorted(KINDS)}")
    rng = np.random.default_rng(seed)
    by_speaker: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_speaker[row.speaker].append(i)
    speakers = sorted(by_speaker)
    if kind == "normal":
        return [(r.speaker, list_path(r)) for r in rows]
    if len(speakers) < 2:
        raise ValueError(f"a {kind} list needs at least 2 speakers")
    lines: list[tuple] = []
    for i, row in enumerate(rows):
        own = [j for j in by_speaker[row.speaker] if j != i]
        if kind == "triplet":
            others = [s for s in speakers if s != row.speaker]
            lines.append((row.speaker, list_path(row), others[rng.integers(len(others))]))
        elif kind == "test":
            for j in rng.permutation(own)[:same]:
                lines.append((1, list_path(row), list_path(rows[j])))
            strangers = np.flatnonzero([r.speaker != row.speaker for r in rows])
            for j in rng.choice(strangers, min(different, len(strangers)), replace=False):
                lines.append((0, list_path(row), list_path(rows[j])))
        else:  # distribution
            for flag in (1, 0):
                pool = [j for j in own if (rows[j].session == row.session) == bool(flag)]
                for j in rng.permutation(pool)[:same]:
                    lines.append((row.speaker, list_path(row), list_path(rows[j]), flag))
    return lines


def write(path: str | Path, lines: Sequence[tuple]) -> None:
    """Write list lines (space-separated fields), atomically."""
    with atomic_open(path) as f:
        f.writelines(" ".join(str(field) for field in line) + "\n" for line in lines)


def read(path: str | Path, kind: str) -> list[tuple]:
    """Parse a list of ``kind``; paths stay as written (see :func:`utt_id`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown list kind {kind!r}; choose from {sorted(KINDS)}")
    path = Path(path)
    lines: list[tuple] = []
    for number, fields, text in list_lines(path, f"{kind} list"):
        flag = {"test": 0, "distribution": 3}.get(kind)
        if len(fields) != KINDS[kind] or (flag is not None and fields[flag] not in ("0", "1")):
            raise ListFileError(
                f"{path}:{number}: not a {kind} line ({_FORMS[kind]}): {text.strip()[:80]!r}"
            )
        if flag is not None:
            fields[flag] = int(fields[flag])
        for i in _PATHS[kind]:
            check_inside(fields[i], path, number)
        lines.append(tuple(fields))
    if not lines:
        raise ListFileError(f"{path}: {kind} list is empty")
    return lines


_PATHS = {"normal": (1,), "test": (1, 2), "triplet": (1,), "distribution": (1, 2)}
_FORMS = {
    "normal": "spk path",
    "test": "1|0 path path",
    "triplet": "spk path other_spk",
    "distribution": "spk path path 1|0",
}
