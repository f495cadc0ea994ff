"""Trial lists (``1|0 path path``) and identification splits (``1|2|3 path``): read with
line-numbered errors; trials also generated with a seed."""

import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import NamedTuple

import numpy as np

from speakerid.errors import ListFileError
from speakerid.utils.io import atomic_open

log = logging.getLogger(__name__)


class Trial(NamedTuple):
    """One line of a trial list; ``label`` 1 = same speaker. Paths as written in the list."""

    label: int
    enroll: str
    test: str
    line: int = 0


def check_inside(path: str, source: Path, number: int) -> str:
    """A list's path, refused when it could leave the corpus root (absolute, or with ``..``)."""
    parts = PurePosixPath(path).parts
    if PurePosixPath(path).is_absolute() or ".." in parts or "\\" in path:
        raise ListFileError(
            f"{source}:{number}: {path!r} is not a path inside the corpus root "
            "(absolute paths and '..' are refused)"
        )
    return path


def list_lines(path: Path, what: str) -> list[tuple[int, list[str], str]]:
    """``(line number, fields, text)`` of each non-blank line of a list file.

    Raises:
        ListFileError: the file is missing or is not UTF-8 text.
    """
    if not path.is_file():
        raise ListFileError(f"{path}: {what} not found")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of line 1
    except UnicodeDecodeError as err:
        reason = f"{err.reason} at byte {err.start}"
        raise ListFileError(f"{path}: {what} is not UTF-8 text ({reason})") from None
    lines = [(n, line.split(), line) for n, line in enumerate(text.split("\n"), start=1)]
    return [(n, fields, line) for n, fields, line in lines if fields]


def read_trials(path: str | Path) -> list[Trial]:
    """Parse a VoxCeleb-style trial list ("1 id10270/x/00001.wav id10271/y/00002.wav").

    Self-trials (the same file on both sides) and pairs listed more than once are logged as a
    warning with their counts (they inflate or skew the metrics, but a list may mean them).

    Raises:
        ListFileError: a malformed line, an empty list, or a list with one class only (EER and
            minDCF need both target and non-target trials).
    """
    path = Path(path)
    trials: list[Trial] = []
    for number, fields, line in list_lines(path, "trial list"):
        if len(fields) != 3 or fields[0] not in ("0", "1"):
            raise ListFileError(
                f"{path}:{number}: expected '1|0 path path', got {line.strip()[:80]!r}"
            )
        enroll, test = (check_inside(f, path, number) for f in fields[1:])
        trials.append(Trial(int(fields[0]), enroll, test, number))
    if not trials:
        raise ListFileError(f"{path}: trial list is empty")
    targets = sum(t.label for t in trials)
    if targets in (0, len(trials)):
        kind = "target (1)" if targets else "non-target (0)"
        raise ListFileError(
            f"{path}: all {len(trials)} trial(s) are {kind}; EER and minDCF need both classes"
        )
    _warn_about_odd_trials(path, trials)
    return trials


def _warn_about_odd_trials(path: Path, trials: list[Trial]) -> None:
    """Log self-trials and repeated pairs (either order), with counts and a first example."""
    selves = [t for t in trials if t.enroll == t.test]
    first: dict[frozenset, Trial] = {}
    repeats, conflicting = [], 0
    for t in trials:
        key = frozenset((t.enroll, t.test))
        if key in first:
            repeats.append(t)
            conflicting += first[key].label != t.label
        else:
            first[key] = t
    if selves:
        log.warning(
            "%s: %d self-trial(s), the same file on both sides (e.g. line %d): they score ~1",
            path,
            len(selves),
            selves[0].line,
        )
    if repeats:
        log.warning(
            "%s: %d trial(s) repeat an earlier pair (e.g. line %d)%s: each is counted again",
            path,
            len(repeats),
            repeats[0].line,
            f", {conflicting} with the opposite label" if conflicting else "",
        )


def read_iden_split(path: str | Path) -> dict[str, int]:
    """Parse a VoxCeleb ``iden_split.txt`` ("3 id10001/1zcIwhmdeo4/00001.wav"): path -> split,
    where 1 = train, 2 = validation, 3 = test."""
    path = Path(path)
    splits: dict[str, int] = {}
    for number, fields, line in list_lines(path, "identification split list"):
        if len(fields) != 2 or fields[0] not in ("1", "2", "3"):
            raise ListFileError(
                f"{path}:{number}: expected '1|2|3 path', got {line.strip()[:80]!r}"
            )
        splits[check_inside(fields[1], path, number)] = int(fields[0])
    if not splits:
        raise ListFileError(f"{path}: identification split list is empty")
    return splits


def write_trials(path: str | Path, trials: Sequence[tuple[int, str, str]]) -> None:
    """Write trials in the VoxCeleb format, atomically."""
    with atomic_open(path) as f:
        f.writelines(f"{t[0]} {t[1]} {t[2]}\n" for t in trials)


def make_trials(
    speakers: Sequence[str],
    sessions: Sequence[str],
    groups: Sequence[str],
    per_utterance: int,
    seed: int,
) -> list[tuple[int, int, int]]:
    """Balanced trials over utterances, as ``(label, i, j)`` index triples.

    Each utterance is paired with ``per_utterance`` utterances of its own speaker (from other
    sessions when the speaker has any, so target trials cross channels) and as many of other
    speakers, at least half of those from speakers of the same group (e.g. language and gender)
    when the group has other speakers. Pairs are unique; the two classes have equal counts.

    Args:
        speakers, sessions, groups: one entry per utterance.
        per_utterance: partners of each kind per utterance.
        seed: seeds the choice of partners.
    """
    rng = np.random.default_rng(seed)
    by_speaker: dict[str, list[int]] = defaultdict(list)
    for i, spk in enumerate(speakers):
        by_speaker[spk].append(i)
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, grp in enumerate(groups):
        by_group[grp].append(i)
    everyone = np.arange(len(speakers))
    pairs: dict[int, set[tuple[int, int]]] = {0: set(), 1: set()}

    def add(label: int, i: int, candidates: np.ndarray, count: int) -> None:
        for j in rng.permutation(candidates)[:count]:
            pairs[label].add((min(i, int(j)), max(i, int(j))))

    for i, spk in enumerate(speakers):
        own = np.array([j for j in by_speaker[spk] if j != i], dtype=int)
        cross = own[[sessions[j] != sessions[i] for j in own]] if own.size else own
        add(1, i, cross if cross.size else own, per_utterance)
        same_group = np.array([j for j in by_group[groups[i]] if speakers[j] != spk], dtype=int)
        n_group = (per_utterance + 1) // 2 if same_group.size else 0
        add(0, i, same_group, n_group)
        others = everyone[[s != spk for s in speakers]]
        add(0, i, others, per_utterance - n_group)
    count = min(len(pairs[0]), len(pairs[1]))
    trials = []
    for label in (1, 0):
        ordered = sorted(pairs[label])
        keep = sorted(rng.permutation(len(ordered))[:count])
        trials += [(label, *ordered[k]) for k in keep]
    return trials
