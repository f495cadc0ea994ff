"""The built-in synthetic corpus: espeak-ng voices recorded through per-session channels.

A speaker is a fixed language, voice variant (formants, pitch, roughness, breath, synthesizer),
pitch range and speaking rate; each utterance is new text with a little jitter of pitch and rate.
Each speaker has several sessions, each with its own channel (see :mod:`channel`), so trials across
sessions are harder than within one, as across VoxCeleb videos. The corpus is written in the
VoxCeleb1 layout and read back by :class:`~speakerid.data.corpora.voxceleb.VoxCelebCorpus`.
"""

import json
import logging
import multiprocessing as mp
import os
import shutil
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from speakerid.data.corpora.channel import random_channel
from speakerid.data.corpora.espeak import (
    LANGUAGE_FILES,
    Espeak,
    make_data_dir,
    variant_file,
    voice_name,
)
from speakerid.data.corpora.sentences import SentenceGenerator
from speakerid.data.corpora.voxceleb import VoxCelebCorpus
from speakerid.data.manifest import Manifest
from speakerid.data.trials import make_trials, write_trials
from speakerid.errors import CorpusError
from speakerid.outputs import MARKER, mark, remove_ours
from speakerid.utils.io import FileLock, atomic_open, write_json
from speakerid.utils.progress import progress_bar

log = logging.getLogger(__name__)
BUILDER_VERSION = 3


@dataclass(frozen=True)
class _Voice:
    speaker: str
    gender: str
    language: str
    variant: str  # espeak variant file text
    rate: int  # words per minute
    pitch_hz: int
    klatt: int
    test: bool


@dataclass(frozen=True)
class _Job:
    path: str
    voice: str
    rate: int
    pitch: int
    range_: int
    text: str
    seed: tuple[int, ...]  # utterance rng
    channel_seed: tuple[int, ...]
    target_seconds: float


class SyntheticCorpus:
    """Builds (once) and reads the built-in corpus.

    Args:
        root: corpus folder; built there by :meth:`prepare` if it is not complete.
        cache_dir: where manifests are cached.
        num_speakers, utterances_per_speaker, sessions_per_speaker: corpus size.
        test_speakers: held-out speakers (the last ones), the only ones in ``veri_test2.txt``.
        min_seconds, max_seconds: utterance duration range.
        trials_per_utterance: target (and as many non-target) partners per test utterance.
        difficulty: scales channel effects (0 = clean studio, 1 = default).
        languages: espeak-ng voices, assigned evenly across speakers and genders.
        seed: the whole corpus is a function of its parameters and this seed.
        num_workers: synthesis processes (``None``: one per core); does not change the output.

    Example:
        >>> corpus = SyntheticCorpus(
        ...     "data/synthetic", "data/cache", num_speakers=8, test_speakers=2
        ... )  # doctest: +SKIP
        >>> corpus.prepare()  # builds data/synthetic/wav/id10001/...  # doctest: +SKIP
        >>> len(corpus.manifest())  # doctest: +SKIP
        160
    """

    def __init__(
        self,
        root: str,
        cache_dir: str,
        num_speakers: int = 200,
        utterances_per_speaker: int = 20,
        sessions_per_speaker: int = 4,
        test_speakers: int = 40,
        min_seconds: float = 2.0,
        max_seconds: float = 6.0,
        trials_per_utterance: int = 4,
        sample_rate: int = 16000,
        difficulty: float = 1.0,
        languages: Sequence[str] = ("en", "en-us", "de", "es", "fr"),
        seed: int = 0,
        num_workers: int | None = None,
    ) -> None:
        if not 0 < test_speakers < num_speakers:
            raise CorpusError(
                f"test_speakers={test_speakers} must be in [1, num_speakers={num_speakers})"
            )
        if sessions_per_speaker < 1 or utterances_per_speaker < 2:
            raise CorpusError("need at least 1 session and 2 utterances per speaker")
        if not 0 < min_seconds <= max_seconds:
            raise CorpusError(
                f"need 0 < min_seconds <= max_seconds, got {min_seconds}, {max_seconds}"
            )
        unknown = sorted(set(languages) - set(LANGUAGE_FILES))
        if unknown or not languages:
            raise CorpusError(
                f"languages {unknown or '[]'} not available; choose from {sorted(LANGUAGE_FILES)}"
            )
        self.root = Path(root)
        self.params = {
            "builder_version": BUILDER_VERSION,
            "num_speakers": num_speakers,
            "utterances_per_speaker": utterances_per_speaker,
            "sessions_per_speaker": sessions_per_speaker,
            "test_speakers": test_speakers,
            "min_seconds": min_seconds,
            "max_seconds": max_seconds,
            "trials_per_utterance": trials_per_utterance,
            "sample_rate": sample_rate,
            "difficulty": difficulty,
            "languages": list(languages),
            "seed": seed,
        }
        self.num_workers = num_workers or os.cpu_count() or 1
        self.reader = VoxCelebCorpus(root, cache_dir, meta_file="meta.csv", sample_rate=sample_rate)

    def manifest(self, validate: bool = False) -> Manifest:
        return self.reader.manifest(validate)

    def trial_path(self, name: str) -> Path:
        return self.reader.trial_path(name)

    def validation_reports(self) -> dict:
        return self.reader.validation_reports()

    def prepare(self) -> None:
        """Build the corpus unless a complete one with the same parameters is already there.

        Builders take ``<root>.lock``: a second process preparing the same corpus waits for the
        first (one log line) and then uses what it built."""
        if (self.root / "corpus.json").is_file():  # built: only its settings to check
            self._check_built()
            return
        self.root.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(f"{self.root}.lock", f"the synthetic corpus {self.root}", wait=True)
        try:
            self._check_built()
        finally:
            lock.release()

    def _check_built(self) -> None:
        """Return if a complete corpus with these parameters is there, else build it."""
        stamp = self.root / "corpus.json"
        if stamp.is_file():
            built = json.loads(stamp.read_text())
            if built != self.params:
                diff = {k: (built.get(k), v) for k, v in self.params.items() if built.get(k) != v}
                raise CorpusError(
                    f"{self.root} holds a synthetic corpus built with other settings "
                    f"(setting: (on disk, requested)) {diff}; delete it or choose another root"
                )
            return
        if self.root.exists() and any(self.root.iterdir()):
            raise CorpusError(
                f"{self.root} exists but is not a complete synthetic corpus; delete it"
            )
        self._build()

    def _build(self) -> None:
        p = self.params
        partial = self.root.with_name(self.root.name + ".partial")
        remove_ours(partial)  # a build that was killed; a folder of the user's is refused
        partial.mkdir(parents=True)
        mark(partial, "an unfinished synthetic corpus")
        voices = _design_voices(p)
        data_dir = make_data_dir(
            partial / "_espeak", p["languages"], {v.speaker: v.variant for v in voices}
        )
        jobs, sessions = _plan_jobs(p, voices)
        log.info(
            "Synthesizing %d utterances of %d speakers into %s", len(jobs), len(voices), self.root
        )
        (partial / "wav").mkdir(parents=True)
        # Workers come from a fork server that imports only this module: not torch, and not the
        # entry point's __main__ (spawn re-imports it: ~5 s and ~0.5 GB per worker, which every
        # per-speaker fork below then copies).
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        with ctx.Pool(self.num_workers, _init_worker, (str(data_dir), str(partial), p)) as pool:
            per_speaker = p["utterances_per_speaker"]
            speakers = [jobs[i : i + per_speaker] for i in range(0, len(jobs), per_speaker)]
            for _ in progress_bar(pool.imap(_render, speakers), len(speakers), "speakers"):
                pass
        shutil.rmtree(partial / "_espeak")
        _write_lists(partial, p, voices, jobs, sessions)
        write_json(partial / "corpus.json", p)
        (partial / MARKER).unlink()
        if self.root.exists():  # found empty before the build (checked under the lock)
            self.root.rmdir()
        os.replace(partial, self.root)
        log.info("Built %s: %d utterances", self.root, len(jobs))


def _design_voices(p: dict) -> list[_Voice]:
    languages = p["languages"]
    voices = []
    for i in range(p["num_speakers"]):
        rng = np.random.default_rng([p["seed"], 1, i])
        gender = ("male", "female")[i % 2]
        language = languages[(i // 2) % len(languages)]
        female = gender == "female"
        base = int(rng.uniform(150, 240) if female else rng.uniform(75, 135))
        tract = rng.uniform(1.04, 1.18) if female else rng.uniform(0.9, 1.04)
        formants = [
            (
                int(100 * tract * rng.uniform(0.95, 1.05)),
                int(rng.uniform(70, 110)),
                int(rng.uniform(80, 160)),
            )
            for _ in range(9)
        ]
        klatt = int(rng.choice([0, 0, 0, 1, 2, 3, 4]))
        name = f"id{10001 + i}"
        # libespeak-ng is reproducible only without flutter (a global phase), and with breath and
        # roughness only in its Klatt synthesizers: the corpus must be a function of the seed.
        breath, roughness = (
            (int(rng.choice([0, 2, 4])), int(rng.integers(0, 5))) if klatt else (0, 0)
        )
        variant = variant_file(
            name,
            gender,
            (base, base + int(rng.uniform(25, 90))),
            formants,
            breath=breath,
            roughness=roughness,
            flutter=0,
            klatt=klatt,
        )
        test = i >= p["num_speakers"] - p["test_speakers"]
        voices.append(
            _Voice(name, gender, language, variant, int(rng.uniform(135, 215)), base, klatt, test)
        )
    return voices


def _plan_jobs(p: dict, voices: list[_Voice]) -> tuple[list[_Job], list[int]]:
    """One job per utterance; texts come from one generator so that none repeats."""
    sentences = SentenceGenerator(p["seed"])
    n_sessions = p["sessions_per_speaker"]
    jobs, sessions = [], []
    for i, v in enumerate(voices):
        for u in range(p["utterances_per_speaker"]):
            rng = np.random.default_rng([p["seed"], 3, i, u])
            session = u % n_sessions
            seconds = rng.uniform(p["min_seconds"], p["max_seconds"])
            rate = int(v.rate * rng.uniform(0.94, 1.06))
            words = max(2, round(seconds * rate / 60))
            jobs.append(
                _Job(
                    path=f"wav/{v.speaker}/session{session + 1:02d}/{u // n_sessions + 1:05d}.wav",
                    voice=voice_name(v.language, v.speaker),
                    rate=rate,
                    pitch=int(50 + rng.uniform(-6, 6)),
                    range_=int(50 + rng.uniform(-8, 8)),
                    text=sentences.sentence(v.language, words),
                    seed=(p["seed"], 3, i, u),
                    channel_seed=(p["seed"], 2, i, session),
                    target_seconds=seconds,
                )
            )
            sessions.append(session)
    return jobs, sessions


_worker: dict = {}


def _init_worker(data_dir: str, out_dir: str, params: dict) -> None:
    _worker.update(tts=Espeak(Path(data_dir)), out=Path(out_dir), params=params)


def _render(jobs: list[_Job]) -> None:
    """Render one speaker's utterances, in order, in a child forked from this fresh worker.

    libespeak-ng carries static state from one utterance into the next (even across voices and
    re-initialization), so audio would depend on what the process spoke before. Each speaker
    starts from the same state and says the same things in the same order, which makes the
    corpus a function of its settings alone, whatever the number of workers.
    """
    pid = os.fork()
    if pid == 0:  # child: never return into the pool's loop
        try:
            for job in jobs:
                _render_utterance(job)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"synthesizing {jobs[0].path} and on failed (see the error above)")


def _render_utterance(job: _Job) -> None:
    """Synthesize, fit to the duration range, record through the session channel, write."""
    tts: Espeak = _worker["tts"]
    p = _worker["params"]
    sr = p["sample_rate"]
    wav = _trim_silence(tts.synthesize(job.text, job.voice, job.rate, job.pitch, job.range_))
    g = gcd(sr, tts.sample_rate)
    wav = resample_poly(wav, sr // g, tts.sample_rate // g)
    while len(wav) < p["min_seconds"] * sr:  # too short: say it again after a pause
        wav = np.concatenate([wav, np.zeros(int(0.2 * sr)), wav])
    wav = wav[: int(min(job.target_seconds + 0.5, p["max_seconds"]) * sr)]
    channel = random_channel(np.random.default_rng(job.channel_seed), sr, p["difficulty"])
    wav = channel.apply(wav, np.random.default_rng(job.seed))
    path = _worker["out"] / job.path
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav, sr, subtype="PCM_16")


def _trim_silence(wav: np.ndarray, margin: int = 1000) -> np.ndarray:
    loud = np.flatnonzero(np.abs(wav) > 0.02 * np.max(np.abs(wav)))
    if loud.size == 0:
        return wav
    return wav[max(loud[0] - margin, 0) : loud[-1] + margin]


def _write_lists(
    root: Path, p: dict, voices: list[_Voice], jobs: list[_Job], sessions: list[int]
) -> None:
    """meta.csv, iden_split.txt and veri_test2.txt (held-out speakers only)."""
    with atomic_open(root / "meta.csv") as f:
        f.write("speaker,gender,language,set,pitch_hz,rate_wpm,klatt\n")
        for v in voices:
            split = "test" if v.test else "dev"
            f.write(
                f"{v.speaker},{v.gender},{v.language},{split},{v.pitch_hz},{v.rate},{v.klatt}\n"
            )
    n_sessions = p["sessions_per_speaker"]
    with atomic_open(root / "iden_split.txt") as f:
        for job, s in zip(jobs, sessions, strict=True):
            from_last = n_sessions - 1 - s  # the last session is test; the one before, if any, dev
            split = (
                3
                if from_last == 0 and n_sessions > 1
                else 2
                if from_last == 1 and n_sessions > 2
                else 1
            )
            f.write(f"{split} {job.path.removeprefix('wav/')}\n")
    per_voice = p["utterances_per_speaker"]
    test = [
        (j, s, voices[k // per_voice])
        for k, (j, s) in enumerate(zip(jobs, sessions, strict=True))
        if voices[k // per_voice].test
    ]
    index = make_trials(
        speakers=[v.speaker for _, _, v in test],
        sessions=[str(s) for _, s, _ in test],
        groups=[f"{v.language}/{v.gender}" for _, _, v in test],
        per_utterance=p["trials_per_utterance"],
        seed=p["seed"],
    )
    paths = [j.path.removeprefix("wav/") for j, _, _ in test]
    write_trials(root / "veri_test2.txt", [(label, paths[a], paths[b]) for label, a, b in index])
