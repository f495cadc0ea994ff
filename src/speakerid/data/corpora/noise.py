"""Augmentation sources as shipped: MUSAN and RIRS_NOISES, read (and validated) like corpora.

- MUSAN: ``noise/``, ``music/``, ``speech/``, each with sub-folders of ``.wav`` files.
- RIRS_NOISES: ``simulated_rirs/{smallroom,mediumroom,largeroom}/RoomNNN/*.wav`` and
  ``real_rirs_isotropic_noises/*.wav`` (whose ``rir_list`` / ``noise_list`` tell impulse responses
  from noises; without them, names holding ``noise`` are noises).

In their manifests the "speaker" is the category (``noise``, ``music``, ``speech``;
``simulated_rir``, ``real_rir``, ``real_noise``) and the "session" the sub-folder, so
:meth:`files` returns the paths of one category.
"""

from pathlib import Path

from speakerid.data.corpora.base import AudioCorpus, Entry, stamp
from speakerid.data.validation import Validator


class _SourceCorpus(AudioCorpus):
    def files(self, category: str) -> list[Path]:
        """Absolute paths of every valid file of ``category``."""
        return self.files_by_category([category])[category]

    def files_by_category(self, categories) -> dict[str, list[Path]]:
        """Category -> absolute paths of its valid files (one manifest read for all)."""
        manifest = self.manifest()
        out: dict[str, list[Path]] = {c: [] for c in categories}
        for row in manifest:
            if row.speaker in out:
                out[row.speaker].append(manifest.audio_path(row))
        return out

    def _entry(self, path: Path, category: str) -> Entry:
        rel = path.relative_to(self.root)
        return Entry(rel, str(rel.with_suffix("")), category, rel.parent.name)


class MusanCorpus(_SourceCorpus):
    """MUSAN (``noise/``, ``music/``, ``speech/``); MUSAN is 16 kHz mono."""

    name = "musan"
    CATEGORIES = ("noise", "music", "speech")

    def contents(self) -> str:
        return stamp(*(p for c in self.CATEGORIES for p in sorted((self.root / c).glob("*"))))

    def describe(self) -> str:
        return "no noise/, music/ or speech/ <source>/*.wav files"

    def entries(self, validator: Validator) -> list[Entry]:
        return [
            self._entry(path, category)
            for category in self.CATEGORIES
            for path in sorted((self.root / category).glob("*/*.wav"))
        ]


class RirCorpus(_SourceCorpus):
    """RIRS_NOISES: simulated and real room impulse responses, and the real isotropic noises."""

    name = "rirs"

    def contents(self) -> str:
        folders = sorted((self.root / "simulated_rirs").glob("*/*"))
        real = self.root / "real_rirs_isotropic_noises"
        return stamp(*folders, real, real / "rir_list", real / "noise_list")

    def describe(self) -> str:
        return "no simulated_rirs/<room size>/<room>/*.wav or real_rirs_isotropic_noises/*.wav"

    def entries(self, validator: Validator) -> list[Entry]:
        out = [
            self._entry(path, "simulated_rir")
            for path in sorted((self.root / "simulated_rirs").glob("*/*/*.wav"))
        ]
        real = self.root / "real_rirs_isotropic_noises"
        noises = _listed(real / "noise_list")
        for path in sorted(real.glob("*.wav")):
            is_noise = path.name in noises if noises is not None else "noise" in path.name
            out.append(self._entry(path, "real_noise" if is_noise else "real_rir"))
        return out


def _listed(path: Path) -> set[str] | None:
    """File names in a Kaldi-style list (last field of each line is a path), or None."""
    if not path.is_file():
        return None
    return {Path(line.split()[-1]).name for line in path.read_text().splitlines() if line.split()}
