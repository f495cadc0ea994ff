"""VoxForge as downloaded: one folder per submission (``user-YYYYMMDD-xxx/``), or its ``.tgz``.

A submission holds ``wav/*.wav`` or ``flac/*.flac``, ``etc/prompts-original`` and ``etc/README``
(``User Name:``, ``Gender:``, ``Age Range:``, ``Language:``, ``Pronunciation dialect:``).
Submissions are merged by user name into one speaker (the original system took each submission
for a speaker); each anonymous submission is its own speaker (or left out), never all together.
Archives are extracted once into the cache (safely: no member may leave its folder).
"""

import logging
import re
import shutil
import tarfile
from pathlib import Path

from speakerid.data.corpora.base import AudioCorpus, Entry, stamp
from speakerid.data.validation import Validator
from speakerid.errors import ConfigError, CorpusError
from speakerid.utils.progress import progress_bar

log = logging.getLogger(__name__)
PART = ".part"  # suffix of an archive being extracted
_FOLDER = re.compile(r"^(?P<user>.+?)-(?P<date>\d{8})-(?P<tag>\w+)$")
_GENDERS = {"male": "male", "female": "female", "männlich": "male", "weiblich": "female"}
_UNSET = {"", "please select", "unknown", "none", "n/a"}


def read_readme(path: Path) -> dict[str, str]:
    """``key: value`` lines of a submission's ``etc/README``, keys lower-cased (tolerates other
    encodings and missing files)."""
    if not path.is_file():
        return {}
    fields = {}
    for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            fields[key.strip().lower()] = value.strip()
    return fields


def _value(fields: dict[str, str], key: str) -> str:
    value = fields.get(key, "")
    return "" if value.lower() in _UNSET else value


class VoxForgeCorpus(AudioCorpus):
    """Reader for VoxForge submissions.

    Args:
        root: the folder of submission folders and/or ``.tgz`` archives.
        cache_dir: manifest, validation report, and ``voxforge/<key>/`` for extracted archives.
        anonymous: ``submission`` (each anonymous submission its own speaker) or ``skip``.
        **kwargs: the validation and filter settings of :class:`AudioCorpus` (VoxForge mixes
            8-48 kHz recordings: its config resamples them).
    """

    name = "voxforge"

    def __init__(self, root: str, cache_dir: str, anonymous: str = "submission", **kwargs) -> None:
        super().__init__(root, cache_dir, **kwargs)
        if anonymous not in ("submission", "skip"):
            raise ConfigError(f"anonymous must be 'submission' or 'skip', got {anonymous!r}")
        self.anonymous = anonymous

    @property
    def extracted(self) -> Path:
        return self.cache_dir / "voxforge" / self.report_path().stem

    def prepare(self) -> None:
        super().prepare()
        archives = [a for a in sorted(self.root.glob("*.tgz")) if not self._unpacked(a).is_dir()]
        for archive in progress_bar(archives, len(archives), "extracting VoxForge archives"):
            self._extract(archive)

    def _unpacked(self, archive: Path) -> Path:
        return self.extracted / archive.name.removesuffix(".tgz")

    def _extract(self, archive: Path) -> None:
        target = self._unpacked(archive)
        part = target.with_name(target.name + PART)
        shutil.rmtree(part, ignore_errors=True)  # a run killed while extracting
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(part, filter="data")  # refuses absolute paths, '..', devices
        except (tarfile.TarError, OSError, EOFError) as err:
            shutil.rmtree(part, ignore_errors=True)  # half an archive is not a submission
            log.warning("%s: unreadable archive, left out (%s)", archive, err)
            return
        part.replace(target)

    def settings(self) -> dict:
        return {"anonymous": self.anonymous}

    def contents(self) -> str:
        return stamp(*self._submissions(), *sorted(self.root.glob("*.tgz")))

    def _submissions(self) -> list[Path]:
        """Submission folders: in the root, and inside extracted archives (which hold one
        folder, or the submission's files directly)."""
        found = [p for p in sorted(self.root.iterdir()) if (p / "etc").is_dir()]
        if self.extracted.is_dir():
            for unpacked in sorted(self.extracted.iterdir()):
                if unpacked.name.endswith(PART):  # being extracted, or left by a killed run
                    continue
                inner = [p for p in sorted(unpacked.iterdir()) if (p / "etc").is_dir()]
                found += inner or ([unpacked] if (unpacked / "etc").is_dir() else [])
        return found

    def describe(self) -> str:
        return "no <user>-<date>-<tag>/{wav,flac}/ submissions or .tgz archives"

    def entries(self, validator: Validator) -> list[Entry]:
        out = []
        for folder in self._submissions():
            fields = read_readme(folder / "etc" / "README")
            match = _FOLDER.match(folder.name)
            user = _value(fields, "user name") or (match["user"] if match else folder.name)
            if user.lower() == "anonymous":
                if self.anonymous == "skip":
                    continue
                user = f"anonymous-{folder.name}"
            files = sorted((folder / "wav").glob("*.wav")) + sorted(
                (folder / "flac").glob("*.flac")
            )
            if not files:
                validator.problem(folder, "missing", "no wav/ or flac/ files in the submission")
                continue
            gender = _GENDERS.get(_value(fields, "gender").lower(), "")
            language = _value(fields, "language").lower()
            age = _value(fields, "age range").lower()
            accent = _value(fields, "pronunciation dialect")
            for path in files:
                rel = path.relative_to(self.root) if path.is_relative_to(self.root) else path
                utt_id = f"{user}/{folder.name}/{path.stem}"
                out.append(Entry(rel, utt_id, user, folder.name, gender, language, age, accent))
        if not out and not self._submissions():
            raise CorpusError(f"{self.root}: {self.describe()}")
        return out
