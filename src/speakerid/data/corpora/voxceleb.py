"""VoxCeleb1/2 as shipped: ``wav/idXXXXX/<video>/NNNNN.wav`` (VoxCeleb2: ``aac/.../NNNNN.m4a``,
converted once to 16 kHz wav with ffmpeg); also reads the synthetic corpus.

Trial lists in the root are chosen with ``data.test_trials``: ``veri_test2.txt`` (Vox1-O,
cleaned), ``list_test_all2.txt`` (Vox1-E), ``list_test_hard2.txt`` (Vox1-H); E and H use VoxCeleb1's
development speakers, so they go with training on VoxCeleb2 (``data=voxceleb2``).
"""

import csv
import logging
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from speakerid.data.corpora.base import AudioCorpus, Entry, stamp
from speakerid.data.validation import Validator
from speakerid.errors import CorpusError
from speakerid.utils.progress import progress_bar

log = logging.getLogger(__name__)
_GENDERS = {"m": "male", "f": "female", "male": "male", "female": "female"}
TRIAL_LISTS = {"O": "veri_test2.txt", "E": "list_test_all2.txt", "H": "list_test_hard2.txt"}


def find_ffmpeg() -> str | None:
    """The ffmpeg on PATH, else the one the ``imageio-ffmpeg`` wheel ships, else None."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        return None


class VoxCelebCorpus(AudioCorpus):
    """Reader for the VoxCeleb layout.

    Every file's header is read once, when the manifest is built, so a corrupt, empty,
    multi-channel or wrongly sampled file is reported (or handled by the policy) before training
    rather than deep in an epoch.

    Args:
        root: corpus folder holding ``audio_dir``, trial lists and the metadata file.
        cache_dir: where the manifest and validation report are cached.
        audio_dir: the folder of speaker folders.
        meta_file: optional CSV/TSV with a speaker column (``speaker``, ``VoxCeleb1 ID`` or
            ``VoxCeleb2 ID``) and ``gender``/``language`` columns (``vox1_meta.csv`` and
            ``vox2_meta.csv`` work as shipped).
        m4a_dir: VoxCeleb2's ``aac`` folder: ``prepare()`` converts every ``.m4a`` in it that has
            no wav yet into ``audio_dir`` (16 kHz mono, with ffmpeg), in ``convert_workers``
            parallel processes. None: no conversion.
        **kwargs: the validation and filter settings of :class:`AudioCorpus`.

    Example:
        >>> manifest = VoxCelebCorpus("/data/voxceleb1", "data/cache").manifest()  # doctest: +SKIP
        >>> manifest[0].utt_id  # doctest: +SKIP
        'id10001/1zcIwhmdeo4/00001'
    """

    name = "voxceleb"
    version = 2

    def __init__(
        self,
        root: str,
        cache_dir: str,
        audio_dir: str = "wav",
        meta_file: str | None = None,
        m4a_dir: str | None = None,
        convert_workers: int = 8,
        **kwargs,
    ) -> None:
        super().__init__(root, cache_dir, **kwargs)
        self.audio_dir = audio_dir
        self.meta_file = meta_file
        self.m4a_dir = m4a_dir
        self.convert_workers = convert_workers

    def prepare(self) -> None:
        if self.m4a_dir and (self.root / self.m4a_dir).is_dir():
            self._convert_m4a()
        if not (self.root / self.audio_dir).is_dir():
            raise CorpusError(f"{self.root / self.audio_dir}: corpus folder not found")

    def describe(self) -> str:
        return f"no {self.audio_dir}/<speaker>/<session>/*.wav files"

    def settings(self) -> dict:
        return {"audio_dir": self.audio_dir, "meta_file": self.meta_file}

    def contents(self) -> str:
        """Speaker/session folder stamps (a file added or removed changes its folder's mtime)
        and the metadata file's."""
        folders = sorted((self.root / self.audio_dir).glob("*/*"))
        meta = [self.root / self.meta_file] if self.meta_file else []
        return stamp(*folders, *meta)

    def entries(self, validator: Validator) -> list[Entry]:
        meta = self._read_meta()
        out = []
        for path in sorted((self.root / self.audio_dir).glob("*/*/*.wav")):
            rel = path.relative_to(self.root)
            speaker, session = rel.parts[-3], rel.parts[-2]
            gender, language = meta.get(speaker, ("", ""))
            utt_id = f"{speaker}/{session}/{path.stem}"
            out.append(Entry(rel, utt_id, speaker, session, gender, language))
        return out

    def _convert_m4a(self) -> None:
        source, target = self.root / self.m4a_dir, self.root / self.audio_dir
        todo = [
            m4a
            for m4a in sorted(source.glob("*/*/*.m4a"))
            if not (target / m4a.relative_to(source)).with_suffix(".wav").is_file()
        ]
        if not todo:
            return
        ffmpeg = find_ffmpeg()
        if ffmpeg is None:
            raise CorpusError(
                f"{source}: {len(todo)} .m4a files need converting to wav, which needs ffmpeg: "
                "install it (apt-get install ffmpeg, conda install -c conda-forge ffmpeg, or "
                "pip install imageio-ffmpeg) and run speakerid-prepare again"
            )
        log.info("converting %d m4a files of %s to %d Hz wav", len(todo), source, self.sample_rate)

        def convert(m4a: Path) -> str | None:
            wav = (target / m4a.relative_to(source)).with_suffix(".wav")
            wav.parent.mkdir(parents=True, exist_ok=True)
            part = wav.with_suffix(".part.wav")
            command = [ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-i", str(m4a)]
            command += ["-ac", "1", "-ar", str(self.sample_rate), "-c:a", "pcm_s16le", str(part)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                part.unlink(missing_ok=True)
                return f"{m4a}: ffmpeg failed ({done.stderr.strip()[:200]})"
            part.replace(wav)  # a crash leaves no half-written wav behind
            return None

        with ThreadPoolExecutor(self.convert_workers) as pool:
            results = list(progress_bar(pool.map(convert, todo), len(todo), "m4a -> wav"))
        failed = [r for r in results if r]
        if failed:
            listing = "\n  ".join(failed[:10])
            raise CorpusError(f"{len(failed)} m4a file(s) could not be converted:\n  {listing}")

    def _read_meta(self) -> dict[str, tuple[str, str]]:
        if not self.meta_file:
            return {}
        path = self.root / self.meta_file
        if not path.is_file():
            raise CorpusError(
                f"{path}: metadata file not found (set data.corpus.meta_file=null if there is "
                "none; corpus.meta_file=null with speakerid-prepare)"
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
