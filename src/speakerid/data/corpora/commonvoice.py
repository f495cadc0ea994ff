"""Mozilla Common Voice as downloaded: ``clips/*.mp3`` plus tab-separated lists.

Each list (``validated.tsv``, ``train.tsv``, ``dev.tsv``, ``test.tsv``, ...) has a header row;
the speaker is ``client_id``. Releases differ in their columns: older ones have ``accent``
and genders ``male``/``female``/``other``; newer ones ``accents``, ``variant``, ``sentence_id``
and genders such as ``male_masculine``. Both are read. Rows with more than ``max_down_votes``
down votes are left out (default: any). Clips are 32-48 kHz MP3: its config resamples them.
"""

import csv
import logging
from pathlib import Path

from speakerid.data.corpora.base import AudioCorpus, Entry, stamp
from speakerid.data.validation import Validator
from speakerid.errors import ConfigError, CorpusError, ListFileError

log = logging.getLogger(__name__)
_GENDERS = {
    "male": "male",
    "male_masculine": "male",
    "female": "female",
    "female_feminine": "female",
}
REQUIRED = ("client_id", "path")


class CommonVoiceCorpus(AudioCorpus):
    """Reader for a Common Voice language folder (``cv-corpus-*/<locale>/``).

    Args:
        root: the language folder holding ``clips/`` and the ``.tsv`` lists.
        cache_dir: manifest and validation report.
        lists: the lists to read (rows appearing in several count once).
        max_down_votes: leave out clips with more down votes than this.
        **kwargs: the validation and filter settings of :class:`AudioCorpus`, e.g.
            ``min_utterances`` (speakers with fewer clips are left out).
    """

    name = "commonvoice"

    def __init__(
        self,
        root: str,
        cache_dir: str,
        lists: tuple[str, ...] | list[str] = ("validated.tsv",),
        max_down_votes: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(root, cache_dir, **kwargs)
        if isinstance(lists, str):
            raise ConfigError(f"lists must be a list of file names, got {lists!r}")
        self.lists = list(lists)
        self.max_down_votes = max_down_votes

    def settings(self) -> dict:
        return {"lists": self.lists, "max_down_votes": self.max_down_votes}

    def prepare(self) -> None:
        """Check the layout: a release folder given instead of one of its languages, or a
        language folder without ``clips/``, is named as such."""
        super().prepare()
        if (self.root / "clips").is_dir():
            return
        languages = sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and (p / "clips").is_dir()
        )
        if languages:
            raise CorpusError(
                f"{self.root} is a Common Voice release folder, not a language folder: set the "
                f"corpus root to one of its languages, e.g. {self.root / languages[0]} "
                f"({', '.join(languages[:8])}{' ...' if len(languages) > 8 else ''})"
            )
        raise CorpusError(
            f"{self.root}: no clips/ folder; the corpus root must be a Common Voice language "
            "folder (cv-corpus-*/<locale>/ holding clips/ and validated.tsv)"
        )

    def contents(self) -> str:
        return stamp(self.root / "clips", *(self.root / name for name in self.lists))

    def describe(self) -> str:
        return f"no clips listed in {', '.join(self.lists)}"

    def entries(self, validator: Validator) -> list[Entry]:
        out, seen, voted_out = [], set(), 0
        for name in self.lists:
            path = self.root / name
            for number, row in self._rows(path):
                clip = row["path"].strip()
                if not clip or "/" in clip or "\\" in clip or clip.startswith("."):
                    raise ListFileError(f"{path}:{number}: {clip!r} is not a clip file name")
                if clip in seen:
                    continue
                seen.add(clip)
                if _int(row.get("down_votes"), path, number) > self.max_down_votes:
                    voted_out += 1
                    continue
                speaker = row["client_id"].strip()
                if not speaker:
                    raise ListFileError(f"{path}:{number}: empty client_id")
                rel = Path("clips") / clip
                out.append(
                    Entry(
                        rel,
                        f"{speaker}/cv/{rel.stem}",
                        speaker,
                        "cv",
                        _GENDERS.get((row.get("gender") or "").strip().lower(), ""),
                        (row.get("locale") or "").strip().lower() or self.root.name.lower(),
                        (row.get("age") or "").strip(),
                        (row.get("accents") or row.get("accent") or "").strip(),
                    )
                )
        if voted_out:
            log.info("%s: %d clips with down votes left out", self.root, voted_out)
        return out

    def _rows(self, path: Path):
        if not path.is_file():
            present = sorted(p.name for p in self.root.glob("*.tsv"))
            raise ListFileError(
                f"{path}: Common Voice list not found (the lists here: "
                f"{', '.join(present) or 'none'}; choose with data.corpus.lists)"
            )
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise ListFileError(f"{path}:1: no {', '.join(missing)} column in the header")
            for number, row in enumerate(reader, start=2):
                if None in row or any(row.get(c) is None for c in REQUIRED):
                    raise ListFileError(f"{path}:{number}: wrong number of tab-separated fields")
                yield number, row


def _int(value: str | None, path: Path, number: int) -> int:
    if value is None or value.strip() == "":
        return 0
    try:
        return int(value)
    except ValueError:
        raise ListFileError(f"{path}:{number}: down_votes {value!r} is not a number") from None
