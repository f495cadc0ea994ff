"""What every file-tree corpus reader shares: the validation pass, the cached manifest, filters.

A reader lists its candidate utterances (:meth:`AudioCorpus.entries`, with speaker, session and
metadata taken from the layout) and a cheap content fingerprint (:meth:`AudioCorpus.contents`,
folder and list-file stamps — no walk over every file). :meth:`AudioCorpus.manifest` runs the
validation pass on a cache miss (every header read once, problems handled by the policy, a report
written beside the cache) and otherwise loads the cached TSV; language and per-speaker minimum
filters apply after loading, so changing them costs no rescan.
"""

import hashlib
import logging
import os
import stat
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from speakerid.data.audio import read_audio
from speakerid.data.manifest import Manifest, Utterance, cache_path, require_nonempty
from speakerid.data.validation import ValidationReport, Validator, make_policy
from speakerid.errors import ConfigError, CorpusError
from speakerid.utils.io import atomic_path
from speakerid.utils.progress import progress_bar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """A candidate utterance as the layout describes it (``path`` absolute or under the root)."""

    path: Path
    utt_id: str
    speaker: str
    session: str
    gender: str = ""
    language: str = ""
    age: str = ""
    accent: str = ""


def stamp(*paths: Path) -> str:
    """A digest of the paths' names, sizes and modification times (absent ones included); a
    folder stands for everything below it, file by file, so a file rewritten in place (which
    leaves its folder's own time alone) changes the digest too."""
    digest = hashlib.sha1()
    for path in paths:
        try:
            info = path.stat()
        except FileNotFoundError:
            digest.update(f"{path}:absent\n".encode())
            continue
        if stat.S_ISDIR(info.st_mode):
            _stamp_tree(str(path), digest)
        else:
            digest.update(f"{path}:{info.st_size}:{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _stamp_tree(folder: str, digest) -> None:
    """Names, sizes and times of every file below ``folder``, in name order."""
    with os.scandir(folder) as scan:
        entries = sorted(scan, key=lambda e: e.name)
    for entry in entries:
        if entry.is_dir(follow_symlinks=True):
            _stamp_tree(entry.path, digest)
        else:
            try:
                info = entry.stat()
                digest.update(f"{entry.path}:{info.st_size}:{info.st_mtime_ns}\n".encode())
            except FileNotFoundError:  # a dangling link
                digest.update(f"{entry.path}:absent\n".encode())


class AudioCorpus:
    """Base of the corpus readers (``root``, ``prepare()``, ``manifest()``, ``trial_path()``).

    Args:
        root: the corpus folder as downloaded.
        cache_dir: manifests (``manifests/``) and validation reports (``reports/``) go here.
        sample_rate: the rate training reads at; other rates follow ``policy.wrong_rate``.
        on_bad_file: ``error`` (default) fails on any bad file, ``skip`` leaves them out with a
            logged count; too-short files are skipped either way.
        policy: per-problem actions overriding ``on_bad_file`` (``speakerid.data.validation``),
            e.g. ``{wrong_rate: resample, multichannel: downmix}``.
        min_seconds: shorter files count as ``too_short``.
        languages: keep only utterances in these languages (None: all).
        min_utterances: drop speakers with fewer utterances (after the other filters).
    """

    name = "corpus"  # names the cache files; subclasses set it
    version = 1  # bump when the rows a reader produces change

    def __init__(
        self,
        root: str,
        cache_dir: str,
        sample_rate: int = 16000,
        on_bad_file: str = "error",
        policy: Mapping[str, str] | None = None,
        min_seconds: float = 0.0,
        languages: Iterable[str] | None = None,
        min_utterances: int = 0,
    ) -> None:
        self.root = Path(root)
        self.cache_dir = Path(cache_dir)
        self.sample_rate = sample_rate
        self.policy = make_policy(on_bad_file, dict(policy or {}))
        self.min_seconds = min_seconds
        self.languages = set(languages) if languages else None
        self.min_utterances = min_utterances
        self.report: ValidationReport | None = None

    # -- what a reader provides ---------------------------------------------------------------

    def entries(self, validator: Validator) -> list[Entry]:
        """Every candidate utterance; list-file problems go to ``validator.problem``."""
        raise NotImplementedError

    def contents(self) -> str:
        """A fingerprint that changes when files are added, removed or replaced."""
        raise NotImplementedError

    def settings(self) -> dict:
        """Reader settings that change the rows (part of the cache key)."""
        return {}

    # -- shared -------------------------------------------------------------------------------

    def prepare(self) -> None:
        if not self.root.is_dir():
            raise CorpusError(f"{self.root}: corpus folder not found")

    def trial_path(self, name: str) -> Path:
        return self.root / name

    def validation_reports(self) -> dict[Path, ValidationReport]:
        """The report of the validation pass run by this reader, by report file (none when the
        manifest came from the cache)."""
        return {} if self.report is None else {self.report_path(): self.report}

    def _fingerprint(self) -> dict:
        return {
            "reader": self.name,
            "version": self.version,
            "root": str(self.root.resolve()),
            "sample_rate": self.sample_rate,
            "policy": self.policy,
            "min_seconds": self.min_seconds,
            "settings": self.settings(),
            "contents": self.contents(),
        }

    def report_path(self) -> Path:
        cache = cache_path(self.cache_dir, self.root, self.name)
        return self.cache_dir / "reports" / f"{cache.stem}.json"

    def manifest(self, validate: bool = False) -> Manifest:
        """The filtered utterances: from the cache when the contents have not changed, else (or
        with ``validate``) from a validation pass over every file."""
        self.prepare()
        fingerprint = self._fingerprint()
        cache = cache_path(self.cache_dir, self.root, self.name)
        manifest = None if validate else Manifest.load(self.root, cache, fingerprint)
        if manifest is None:
            manifest = require_nonempty(self._validated(), self.describe())
            manifest.save(cache, fingerprint)
        return self._filtered(manifest)

    def describe(self) -> str:
        return "no audio files in the expected layout"

    def _validated(self) -> Manifest:
        self.report_path().parent.mkdir(parents=True, exist_ok=True)
        validator = Validator(str(self.root), self.sample_rate, self.policy, self.min_seconds)
        entries = self.entries(validator)
        rows = []
        for entry in progress_bar(entries, len(entries), f"reading headers ({self.name})"):
            checked = validator.check(self.root / entry.path)
            if checked is None:
                continue
            path = entry.path
            if "convert" in checked.fixes:
                path = self._converted_copy(entry.path)
            rows.append(
                Utterance(
                    entry.utt_id,
                    str(path),
                    entry.speaker,
                    entry.session,
                    checked.num_samples,
                    self.sample_rate,
                    entry.gender,
                    entry.language,
                    entry.age,
                    entry.accent,
                )
            )
        self.report = validator.finish(self.report_path())
        return Manifest(self.root, rows)

    @property
    def converted_dir(self) -> Path:
        """Where ``convert`` policies write their copies."""
        return self.cache_dir / "converted" / self.report_path().stem

    def _converted_copy(self, path: Path) -> Path:
        """A mono ``sample_rate`` 16-bit wav copy of ``path`` (made once; absolute)."""
        source = self.root / path
        relative = path.relative_to(self.root) if path.is_absolute() else path
        copy = (self.converted_dir / relative).with_suffix(".wav")
        if not copy.is_file() or copy.stat().st_mtime_ns < source.stat().st_mtime_ns:
            wav = read_audio(source, self.sample_rate, convert=True)
            copy.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(copy) as tmp:
                sf.write(str(tmp), wav, self.sample_rate, subtype="PCM_16", format="WAV")
        return copy.resolve()

    def _filtered(self, manifest: Manifest) -> Manifest:
        rows = list(manifest)
        if self.languages is not None:
            rows = [r for r in rows if r.language in self.languages]
            if not rows:
                raise ConfigError(
                    f"{self.root}: no utterance in languages {sorted(self.languages)} "
                    f"(present: {sorted({r.language for r in manifest})})"
                )
        if self.min_utterances > 1:
            counts = Counter(r.speaker for r in rows)
            kept = [r for r in rows if counts[r.speaker] >= self.min_utterances]
            dropped = len({r.speaker for r in rows}) - len({r.speaker for r in kept})
            if dropped:
                log.info(
                    "%s: %d speakers with fewer than %d utterances left out",
                    self.root,
                    dropped,
                    self.min_utterances,
                )
            rows = kept
        if len(rows) == len(manifest):
            return manifest
        return require_nonempty(Manifest(self.root, rows), "every utterance was filtered out")
