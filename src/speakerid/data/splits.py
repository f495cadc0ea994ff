"""Pure functions that split a corpus: speakers into train / validation / test, a speaker's files
by an identification split, training files into speed-perturbed classes, metadata into label
columns, an epoch into chunks. No I/O, no state: the data module composes them."""

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from speakerid.data.manifest import Utterance
from speakerid.errors import ConfigError, ListFileError

METADATA_LABELS = ("gender", "language", "age", "accent")


def split_off(
    speakers: list[str], count: float | Sequence[str], seed: int, what: str, where
) -> tuple[list[str], set[str]]:
    """(the rest in order, the held-out set): ``count`` speakers drawn with ``seed`` (that
    fraction when below 1), or the speakers a list names.

    Raises:
        ConfigError: the count leaves no speaker on either side, or the list names a speaker
            that is not among ``speakers``.
    """
    if len(speakers) < 2:
        raise ConfigError(
            f"{where} has {len(speakers)} speaker(s) left to split for data.{what}_speakers: "
            "training needs 2 or more speakers in each of training, validation and test"
        )
    if isinstance(count, Sequence) and not isinstance(count, str):
        return _named(speakers, [str(s) for s in count], what, where)
    number = round(count * len(speakers)) if 0 < count < 1 else int(count)
    if not 0 < number < len(speakers):
        raise ConfigError(
            f"data.{what}_speakers={count} must give between 1 and {len(speakers) - 1} speakers "
            f"(a count, or a fraction below 1): {where} has {len(speakers)} to split"
        )
    chosen = set(np.random.default_rng(seed).choice(speakers, number, replace=False).tolist())
    return [s for s in speakers if s not in chosen], chosen


def _named(speakers: list[str], named: list[str], what: str, where) -> tuple[list[str], set[str]]:
    """``split_off`` by a list of speaker names."""
    unknown = sorted(set(named) - set(speakers))
    if unknown:
        raise ConfigError(
            f"data.{what}_speakers: {', '.join(unknown[:3])} not among the {len(speakers)} "
            f"speakers of {where} left to split (a speaker folder's name, each once)"
        )
    chosen = set(named)
    if not chosen or len(chosen) >= len(speakers):
        raise ConfigError(
            f"data.{what}_speakers names {len(chosen)} of the {len(speakers)} speakers of "
            f"{where} left to split: at least one must stay on each side"
        )
    return [s for s in speakers if s not in chosen], chosen


def split_speakers(
    dev: list[str], val_speakers: float | Sequence[str], num_speakers: int | None, seed: int, where
) -> tuple[list[str], set[str]]:
    """Training speakers (in ``dev`` order) and a seeded set of ``val_speakers`` validation ones
    (a count, a fraction of ``dev`` when below 1, or a list of names).

    Raises:
        ConfigError: ``val_speakers`` does not fit, or the training speakers are not
            ``num_speakers`` (None: not checked); the message names the value to set.
    """
    speakers, val = split_off(dev, val_speakers, seed, "val", where)
    if num_speakers is not None and len(speakers) != num_speakers:
        raise ConfigError(
            f"data.num_speakers={num_speakers}, but {where} has {len(speakers)} training speakers "
            f"({len(dev)} outside the test trials, less {len(val)} for validation): "
            f"set data.num_speakers={len(speakers)}"
        )
    return speakers, val


def label_columns(
    rows: Sequence[Utterance], speaker_class: Mapping[str, int], extra_labels: Sequence[str]
) -> tuple[np.ndarray, dict[str, list[str]]]:
    """(N,) speaker classes, or (N, 1 + K) with the ``extra_labels`` metadata columns (-100 where
    the corpus states nothing); and each metadata vocabulary (the sorted training values)."""
    speakers = np.array([speaker_class[u.speaker] for u in rows], dtype=np.int64)
    if not extra_labels:
        return speakers, {}
    columns, vocabularies = [speakers], {}
    for name in extra_labels:
        if name not in METADATA_LABELS:
            raise ConfigError(f"data.extra_labels: unknown {name!r} ({', '.join(METADATA_LABELS)})")
        values = [u._asdict()[name] for u in rows]
        vocab = sorted({v for v in values if v})
        if not vocab:
            raise ConfigError(f"data.extra_labels: the corpus states no {name} for any speaker")
        vocabularies[name] = vocab
        index = {v: i for i, v in enumerate(vocab)}
        columns.append(np.array([index.get(v, -100) for v in values], dtype=np.int64))
    return np.stack(columns, axis=1), vocabularies


def resplit(
    rows: Sequence[Utterance], listed: Mapping[str, int], fractions: Sequence[float], seed: int
) -> dict[str, int]:
    """Each speaker's listed files shuffled (``seed``) and cut into splits 1/2/3 by
    ``fractions`` (train, dev, test)."""
    rng = np.random.default_rng([seed, 3])
    by_speaker: dict[str, list[str]] = {}
    for u in rows:
        if u.utt_id in listed:
            by_speaker.setdefault(u.speaker, []).append(u.utt_id)
    train_part, dev_part, _ = fractions
    out = {}
    for speaker in sorted(by_speaker):
        files = [by_speaker[speaker][i] for i in rng.permutation(len(by_speaker[speaker]))]
        a = round(train_part * len(files))
        b = a + round(dev_part * len(files))
        out.update({f: 1 if i < a else 2 if i < b else 3 for i, f in enumerate(files)})
    return out


def identification_split(
    rows: Sequence[Utterance], splits: Mapping[str, int], source: Path
) -> tuple[list[Utterance], list[Utterance]]:
    """(split-1 rows, split-3 rows) of ``rows`` by ``splits`` (utterance id -> 1|2|3), read from
    the list ``source``; every row must have a split."""
    unlisted = [u.utt_id for u in rows if u.utt_id not in splits]
    if unlisted:
        raise ListFileError(
            f"{source}: {len(unlisted)} training utterance(s) have no split, e.g. {unlisted[0]}"
        )
    train = [u for u in rows if splits[u.utt_id] == 1]
    test = [u for u in rows if splits[u.utt_id] == 3]
    if not train or not test:
        raise ListFileError(f"{source}: no split-1 or no split-3 files among training speakers")
    return train, test


def with_speed_classes(
    rows: list[Utterance], labels: np.ndarray, speakers: list[str], factors: Sequence[float]
) -> tuple[list[Utterance], np.ndarray, np.ndarray, list[str]]:
    """Every training file again at each speed factor, as a new speaker class (Kaldi's recipe):
    (rows, labels, the speed of each row, class names), the classes ``speakers x (1 + factors)``."""
    n, copies = len(speakers), 1 + len(factors)
    shifted = []
    for k in range(copies):
        copy = labels.copy()
        if copy.ndim == 1:
            copy += k * n
        else:
            copy[:, 0] += k * n
        shifted.append(copy)
    speeds = np.repeat([1.0, *factors], len(rows))
    names = speakers + [f"{s}@speed{f}" for f in factors for s in speakers]
    return rows * copies, np.concatenate(shifted), speeds, names


def chunked_epoch(
    rows: list[Utterance], labels: np.ndarray, speeds: np.ndarray | None, chunk_samples: int
) -> tuple[list[Utterance], np.ndarray, np.ndarray | None]:
    """Each training file once per whole ``chunk_samples`` chunk it holds (at least once): the
    epoch of SpeechBrain's ``voxceleb_prepare.py``, one row per non-overlapping chunk, each row
    then a random crop of its file (``random_chunk``). SpeechBrain leaves out files shorter
    than one chunk; none of VoxCeleb is, and here they count once.

    Returns ``(rows, labels, speeds)`` with every file's entries repeated in place."""
    if chunk_samples < 1:
        raise ConfigError("data.chunk_seconds must be above 0 (null: one crop per file)")
    counts = np.array([max(1, u.num_samples // chunk_samples) for u in rows], dtype=np.int64)
    index = np.repeat(np.arange(len(rows)), counts)
    return (
        [rows[i] for i in index],
        labels[index],
        None if speeds is None else speeds[index],
    )
