"""Fuzz-style bad input: random bytes as wav files and random lines as list files are reported
(one clear error naming the file, or a counted skip), never an unexpected exception."""

import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from speakerid.data import enhancement_lists
from speakerid.data.corpora import VoxCelebCorpus
from speakerid.data.trials import read_iden_split, read_trials
from speakerid.errors import CorpusError, ListFileError

TOKENS = [
    "0",
    "1",
    "2",
    "-1",
    "id10001/session01/00001.wav",
    "../x.wav",
    "/abs.wav",
    "wav",
    "id1\\x.wav",
    "ünïcödé",
    "1.5",
    "",
    "\t",
    "nan",
    "🙂",
    "a b",
    "\x00",
]


def _random_audio_bytes(rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:
        return b""
    if kind == 1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000)))
    header = b"RIFF" + rng.randbytes(4) + b"WAVEfmt "  # a wav header, then garbage
    return (
        header + rng.randbytes(rng.randrange(0, 200)) if kind == 2 else b"fLaC" + rng.randbytes(64)
    )


@pytest.mark.parametrize("seed", range(4))
def test_random_bytes_as_audio_are_reported_or_skipped(
    tiny_corpus, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    root = tmp_path / "corpus"
    shutil.copytree(tiny_corpus.root / "wav", root / "wav")
    files = sorted((root / "wav").rglob("*.wav"))
    broken = rng.sample(files, rng.randrange(1, 6))
    for path in broken:
        path.write_bytes(_random_audio_bytes(rng))
    with pytest.raises(CorpusError) as info:
        VoxCelebCorpus(str(root), str(tmp_path / "cache")).manifest()
    assert str(info.value).startswith(f"{len(broken)} bad audio file(s)")
    manifest = VoxCelebCorpus(str(root), str(tmp_path / "cache"), on_bad_file="skip").manifest()
    assert len(manifest) == len(files) - len(broken)


@pytest.mark.parametrize("seed", range(30))
def test_random_list_lines_parse_or_name_their_line(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(TOKENS) for _ in range(rng.randrange(0, 5))) for _ in range(8)]
    path = tmp_path / "list.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    readers = [read_trials, read_iden_split] + [
        (lambda p, k=kind: enhancement_lists.read(p, k)) for kind in enhancement_lists.KINDS
    ]
    for read in readers:
        try:
            read(path)
        except ListFileError as err:
            assert str(err).startswith(str(path))  # names the file (and the line, if one is bad)
        # anything else propagates and fails the test


def test_random_bytes_as_a_list_file(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(ListFileError, match=r"list\.txt"):
        read_trials(path)
