"""VoxCeleb1/2 as shipped (``wav/idXXXXX/<video>/NNNNN.wav``); also reads the synthetic corpus."""

import csv
import hashlib
import logging
from pathlib import Path

from speakerid.data.audio import audio_info
from speakerid.data.manifest import Manifest, Utterance, cache_path, require_nonempty
from speakerid.errors import AudioError, ConfigError, CorpusError
from speakerid.utils.progress import progress_bar

log = logging.getLogger(__name__)
READER_VERSION = 1
_GENDERS = {"m": "male", "f": "female", "male": "male", "female": "female"}


class VoxCelebCorpus:
    """Reader for the VoxCeleb layout.

    Every file's header is read once, when the manifest is built, so a corrupt, empty, multi-channel
    or wrongly sampled file is reported before training rather than deep in an epoch.

    Args:
        root: corpus folder holding ``audio_dir``, trial lists and the metadata file.
        cache_dir: where the manifest is cached.
        audio_dir: the folder of speaker folders.
        meta_file: optional CSV/TSV with a speaker column (``speaker`` or ``VoxCeleb1 ID``) and
            ``gender``/``language`` columns (VoxCeleb's ``vox1_meta.csv`` works as shipped).
        sample_rate: the rate every file must have.
        on_bad_file: ``error`` stops with a list of the bad files; ``skip`` leaves them out and logs
            how many.

    Example:
        >>> manifest = VoxCelebCorpus("/data/voxceleb1", "data/cache").manifest()  # doctest: +SKIP
        >>> manifest[0].utt_id  # doctest: +SKIP
        'id10001/1zcIwhmdeo4/00001'
    """

    def __init__(
        self,
        root: str,
        cache_dir: str,
        audio_dir: str = "wav",
        meta_file: str | None = None,
        sample_rate: int = 16000,
        on_bad_file: str = "error",
    ) -> None:
        if on_bad_file not in ("error", "skip"):
            raise ConfigError(f"on_bad_file must be 'error' or 'skip', got {on_bad_file!r}")
        self.root = Path(root)
        self.cache_dir = Path(cache_dir)
        self.audio_dir = audio_dir
        self.meta_file = meta_file
        self.sample_rate = sample_rate
        self.on_bad_file = on_bad_file

    def prepare(self) -> None:
        if not (self.root / self.audio_dir).is_dir():
            raise CorpusError(f"{self.root / self.audio_dir}: corpus folder not found")

    def trial_path(self, name: str) -> Path:
        return self.root / name

    def manifest(self) -> Manifest:
        """The corpus' utterances, from the cache when the folders have not changed since."""
        self.prepare()
        fingerprint = self._fingerprint()
        cache = cache_path(self.cache_dir, self.root, "voxceleb")
        manifest = Manifest.load(self.root, cache, fingerprint)
        if manifest is None:
            manifest = require_nonempty(
                self._scan(), f"no {self.audio_dir}/<speaker>/<session>/*.wav files"
            )
            manifest.save(cache, fingerprint)
        return manifest

    def _fingerprint(self) -> dict:
        """Changes when a speaker or session folder, or the metadata file, changes."""
        digest = hashlib.sha1()
        for folder in sorted((self.root / self.audio_dir).glob("*/*")):
            digest.update(f"{folder.relative_to(self.root)}:{folder.stat().st_mtime_ns}\n".encode())
        meta = self.root / self.meta_file if self.meta_file else None
        meta_stamp = meta.stat().st_mtime_ns if meta and meta.is_file() else None
        return {
            "reader": READER_VERSION,
            "root": str(self.root.resolve()),
            "sample_rate": self.sample_rate,
            "on_bad_file": self.on_bad_file,
            "folders": digest.hexdigest(),
            "meta": meta_stamp,
        }

    def _scan(self) -> Manifest:
        meta = self._read_meta()
        files = sorted((self.root / self.audio_dir).glob("*/*/*.wav"))
        rows, bad = [], []
        for path in progress_bar(files, len(files), "reading headers"):
            try:
                rows.append(self._row(path, meta))
            except AudioError as err:
                bad.append(str(err))
        if bad:
            listing = "\n  ".join(bad[:10]) + (
                f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
            )
            if self.on_bad_file == "error":
                raise CorpusError(
                    f"{len(bad)} bad audio file(s) in {self.root} "
                    f"(set on_bad_file=skip to leave them out):\n  {listing}"
                )
            log.warning(
                "Skipped %d bad audio file(s) of %d in %s:\n  %s",
                len(bad),
                len(files),
                self.root,
                listing,
            )
        return Manifest(self.root, rows)

    def _row(self, path: Path, meta: dict[str, tuple[str, str]]) -> Utterance:
        info = audio_info(path)
        if info.samplerate != self.sample_rate:
            raise AudioError(
                f"{path}: sample rate {info.samplerate} Hz, expected {self.sample_rate} Hz"
            )
        if info.channels != 1:
            raise AudioError(f"{path}: {info.channels} channels, expected mono")
        if info.frames == 0:
            raise AudioError(f"{path}: empty (0 samples)")
        rel = path.relative_to(self.root)
        speaker, session = rel.parts[-3], rel.parts[-2]
        gender, language = meta.get(speaker, ("", ""))
        utt_id = f"{speaker}/{session}/{path.stem}"
        return Utterance(
            utt_id,
            str(rel),
            speaker,
            session,
            int(info.frames),
            int(info.samplerate),
            gender,
            language,
        )

    def _read_meta(self) -> dict[str, tuple[str, str]]:
        if not self.meta_file:
            return {}
        path = self.root / self.meta_file
        if not path.is_file():
            raise CorpusError(
                f"{path}: metadata file not found (set meta_file=null if there is none)"
            )
        with open(path, newline="") as f:
            head = f.readline()
            f.seek(0)
            rows = list(csv.DictReader(f, delimiter="\t" if "\t" in head else ","))
        if not rows:
            return {}
        keys = {k.strip().lower(): k for k in rows[0]}
        spk_key = next(
            (keys[k] for k in ("speaker", "voxceleb1 id", "voxceleb2 id") if k in keys), None
        )
        if spk_key is None:
            raise CorpusError(f"{path}: no speaker column (expected 'speaker' or 'VoxCeleb1 ID')")
        g_key, l_key = keys.get("gender"), keys.get("language")
        return {
            row[spk_key].strip(): (
                _GENDERS.get(row[g_key].strip().lower(), "") if g_key else "",
                row[l_key].strip() if l_key else "",
            )
            for row in rows
        }
