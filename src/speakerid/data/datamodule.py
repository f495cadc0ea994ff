"""SpeakerDataModule: speaker-disjoint train / validation / test from one corpus.

A thin composition: trial sets (``trialset``), pure splits (``splits``) and loaders
(``loaders``) do the work; this class holds the settings and the state Lightning needs.
"""

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePosixPath

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from speakerid.contracts import Corpus, list_prefix, reserved_speakers
from speakerid.data.datasets import CropDataset
from speakerid.data.loaders import (
    Augment,
    EvalSettings,
    ShardSettings,
    eval_loader,
    file_loader,
    shard_loader,
)
from speakerid.data.manifest import Manifest, Utterance
from speakerid.data.samplers import ResumableLoader
from speakerid.data.shards import ShardLoader
from speakerid.data.splits import (
    chunked_epoch,
    identification_split,
    label_columns,
    resplit,
    split_off,
    split_speakers,
    with_speed_classes,
)
from speakerid.data.trials import read_iden_split, read_trials
from speakerid.data.trialset import TrialSet, generated_trials, resolve_trials
from speakerid.errors import ConfigError

log = logging.getLogger(__name__)
# copies: each file again at each speed (Kaldi); random: a speed per crop (WeSpeaker); classes:
# the speed copies' classes only, no crop perturbed (WeSpeaker's LM stage: the head keeps them)
SPEED_MODES = ("copies", "random", "classes")


class SpeakerDataModule(L.LightningDataModule):
    """Training crops and validation/test trials from one corpus, with disjoint speakers.

    Speakers in the test trial list (and a composite corpus's evaluation-only members) never
    reach training. Of the rest, ``val_speakers`` (chosen with ``seed``) give a generated
    validation trial list and the others are the training classes, whose count must equal
    ``num_speakers`` (the loss heads are built from it; None: not checked).

    Args:
        corpus: the corpus reader (:class:`~speakerid.contracts.Corpus`).
        num_speakers: training classes expected; checked in :meth:`setup`.
        sample_rate: rate of every file.
        crop_seconds: training crop length.
        batch_size, num_workers, pin_memory: training loader.
        val_speakers: held out from training for validation EER (a count, a fraction < 1, or
            a list of speaker names).
        val_trials_per_utterance: target (and non-target) partners per generated-trial utterance.
        test_trials: trial list file name in the corpus root, or None.
        test_speakers: with ``test_trials=None``: held out for a generated test trial list (a
            count, a fraction < 1, or a list of speaker names); 0: no test set.
        eval: how validation/test utterances are embedded (:class:`EvalSettings`).
        shards: training from shards instead of files (:class:`ShardSettings`).
        seed: seeds the splits and generated trials.
        augment: ``(wav, rng) -> wav`` for training crops (the ``augment`` group), or None.
        sampler: a partial of a batch sampler over the training speakers (N x M batches;
            its N*M replaces ``batch_size``), or None: shuffled utterances.
        iden_split: an identification split list in the corpus root: training speakers train
            on their split-1 files, and split 3 becomes ``iden_test_rows``.
        iden_resplit: with ``iden_split``: train/dev/test fractions for a seeded per-speaker
            split instead of the list's column.
        extra_labels: metadata labels after the speaker (``gender``, ...), for multi-task heads.
        speed_classes: speed factors whose perturbed copies of every training file are new
            speakers: ``num_speakers`` becomes ``speakers x (1 + len(speed_classes))``.
        speed_mode: ``copies`` (every file at each speed), ``random`` (a speed per crop) or
            ``classes`` (the classes only, nothing perturbed: WeSpeaker's LM stage).
        max_speakers: train on the first n training speakers only (sorted ids); None: all.
        chunk_seconds: an epoch holds each training file once per whole chunk of this length
            (SpeechBrain's epoch: :func:`~speakerid.data.splits.chunked_epoch`); None: once.
    """

    def __init__(
        self,
        corpus: Corpus,
        num_speakers: int | None,
        sample_rate: int = 16000,
        crop_seconds: float = 2.0,
        batch_size: int = 64,
        num_workers: int = 2,
        pin_memory: bool = False,
        val_speakers: float | Sequence[str] = 16,
        val_trials_per_utterance: int = 4,
        test_trials: str | None = "veri_test2.txt",
        test_speakers: float | Sequence[str] = 0,
        eval: Mapping | EvalSettings | None = None,
        shards: Mapping | ShardSettings | None = None,
        seed: int = 0,
        augment: Augment | None = None,
        sampler: Callable | None = None,
        iden_split: str | None = None,
        iden_resplit: Sequence[float] | None = None,
        extra_labels: Sequence[str] = (),
        speed_classes: Sequence[float] = (),
        max_speakers: int | None = None,
        speed_mode: str = "copies",
        chunk_seconds: float | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1 or num_workers < 0 or crop_seconds <= 0:
            raise ConfigError(
                "data.batch_size >= 1, data.num_workers >= 0 and data.crop_seconds > 0, got "
                f"{batch_size}, {num_workers}, {crop_seconds}"
            )
        if speed_mode not in SPEED_MODES:
            raise ConfigError(f"data.speed_mode: copies, random or classes, got {speed_mode!r}")
        if any(f <= 0 or f == 1.0 for f in speed_classes):
            raise ConfigError(f"data.speed_classes: factors other than 1.0, got {speed_classes}")
        if iden_resplit is not None and (
            len(iden_resplit) != 3 or abs(sum(iden_resplit) - 1) > 1e-6
        ):
            raise ConfigError(
                f"data.iden_resplit: three fractions summing to 1, got {iden_resplit}"
            )
        self.corpus = corpus
        self.num_speakers = num_speakers
        self.sample_rate = sample_rate
        self.crop_samples = int(crop_seconds * sample_rate)
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self.val_speakers = val_speakers
        self.val_trials_per_utterance = val_trials_per_utterance
        self.test_trials_name = test_trials
        self.test_speakers = test_speakers
        self.eval = eval if isinstance(eval, EvalSettings) else EvalSettings(**(eval or {}))
        self.shards = (
            shards if isinstance(shards, ShardSettings) else ShardSettings(**(shards or {}))
        )
        self.seed = seed
        self.augment = augment
        self.sampler = sampler
        self.iden_split = iden_split
        self.iden_resplit = None if iden_resplit is None else [float(f) for f in iden_resplit]
        self.extra_labels = list(extra_labels)
        self.speed_classes = [float(f) for f in speed_classes]
        self.speed_mode = speed_mode
        self.max_speakers = max_speakers
        self.chunk_samples = None if chunk_seconds is None else int(chunk_seconds * sample_rate)
        # what setup() finds
        self.manifest: Manifest | None = None
        self.speakers: list[str] = []  # training class i is speakers[i]
        self.train_rows: list[Utterance] = []
        self.iden_test_rows: list[Utterance] = []  # split 3 of the training speakers
        self.label_vocab: dict[str, list[str]] = {}
        self.val_trials: TrialSet | None = None
        self.test_trials: TrialSet | None = None
        self._train_labels = np.zeros(0, dtype=np.int64)
        self._train_speeds: np.ndarray | None = None
        self._train_loader: ResumableLoader | ShardLoader | None = None
        self._resume_position: dict | None = None

    def prepare_data(self) -> None:
        self.corpus.prepare()

    def setup(self, stage: str | None = None) -> None:
        if self.manifest is not None:
            return
        self.manifest = self.corpus.manifest()
        where = self.manifest.root if str(self.manifest.root) != "/" else "the combined corpora"
        fitting = stage in (None, "fit")
        val = self._held_out_splits(where, fitting)
        if self.max_speakers:
            self.speakers = sorted(self.speakers)[: self.max_speakers]
        speaker_class = {s: i for i, s in enumerate(self.speakers)}
        self.train_rows = [u for u in self.manifest if u.speaker in speaker_class]
        if self.iden_split:
            self.train_rows, self.iden_test_rows = self._identification(self.train_rows)
        self._train_labels, self.label_vocab = label_columns(
            self.train_rows, speaker_class, self.extra_labels
        )
        for name, vocab in self.label_vocab.items():
            log.info("label %s: %s", name, ", ".join(vocab))
        if self.speed_classes and self.speed_mode != "copies":  # classes; random: speed per crop
            self.speakers = self.speakers + [
                f"{s}@speed{f}" for f in self.speed_classes for s in self.speakers
            ]
        elif self.speed_classes:
            self.train_rows, self._train_labels, self._train_speeds, self.speakers = (
                with_speed_classes(
                    self.train_rows, self._train_labels, self.speakers, self.speed_classes
                )
            )
        if (
            fitting and self.num_speakers is not None and len(self.speakers) != self.num_speakers
        ):  # with max/speed classes
            raise ConfigError(
                f"data.num_speakers={self.num_speakers}, but {where} gives {len(self.speakers)} "
                f"training classes (data.max_speakers={self.max_speakers}, data.speed_classes="
                f"{self.speed_classes}): set data.num_speakers={len(self.speakers)}"
            )
        self.val_trials = self._generated("val", val) if val else None
        log.info(
            "training (or cohort): %d utterances of %d speakers; validation: %s; test: %s",
            len(self.train_rows),
            len(self.speakers),
            f"{len(self.val_trials.labels)} trials" if self.val_trials else "none",
            f"{len(self.test_trials.labels)} trials" if self.test_trials else "none",
        )

    def _random_speeds(self) -> dict:
        """CropDataset's arguments for ``speed_mode=random`` (WeSpeaker's speed perturbation)."""
        if not (self.speed_classes and self.speed_mode == "random"):
            return {}
        factors = [1.0, *self.speed_classes]
        return {"random_speeds": factors, "speed_class_offset": len(self.speakers) // len(factors)}

    def _held_out_splits(self, where, fitting: bool) -> set[str]:
        """Test trials (listed or generated), then the training speakers (``speakers``; their
        count checked when ``fitting``) and the validation ones (returned)."""
        held_out: set[str] = set()
        if self.test_trials_name:
            path = self.corpus.trial_path(self.test_trials_name)
            prefix = list_prefix(self.corpus, self.test_trials_name)
            self.test_trials = resolve_trials(
                "test", read_trials(path), self.manifest, path, prefix
            )
            held_out = {u.speaker for u in self.test_trials.utterances}
        held_out |= reserved_speakers(self.corpus, self.manifest)
        dev = [s for s in self.manifest.speakers if s not in held_out]
        if self.test_speakers:
            if self.test_trials_name:
                raise ConfigError(
                    f"data.test_trials={self.test_trials_name} and data.test_speakers="
                    f"{self.test_speakers} both choose the test speakers: set "
                    "data.test_speakers=0 (the list's) or data.test_trials=null (held out)"
                )
            dev, test = split_off(dev, self.test_speakers, self.seed + 1, "test", where)
            self.test_trials = self._generated("test", test)
        plain = not (self.max_speakers or self.speed_classes)  # classes = the training speakers
        expected = self.num_speakers if plain and fitting else None
        if not self.val_speakers:  # a test-only corpus (data=folder): nothing to validate on
            if fitting:
                raise ConfigError("data.val_speakers=0 is for evaluation only: training validates")
            self.speakers = dev
            return set()
        self.speakers, val = split_speakers(dev, self.val_speakers, expected, self.seed, where)
        return val

    def _generated(self, name: str, speakers: set[str]) -> TrialSet:
        if len(speakers) < 2:  # a fraction of a small corpus can round to one speaker
            raise ConfigError(
                f"data.{name}_speakers={getattr(self, f'{name}_speakers')} holds out "
                f"{len(speakers)} speaker of {self.manifest.root}: trials need 2 or more"
            )
        rows = [u for u in self.manifest if u.speaker in speakers]
        return generated_trials(name, rows, self.val_trials_per_utterance, self.seed)

    def _identification(self, rows: list[Utterance]) -> tuple[list[Utterance], list[Utterance]]:
        path = self.corpus.trial_path(self.iden_split)
        prefix = list_prefix(self.corpus, self.iden_split)
        splits = {
            prefix + str(PurePosixPath(p).with_suffix("")): s
            for p, s in read_iden_split(path).items()
        }
        if self.iden_resplit is not None:  # a seeded per-speaker split instead of the list's
            splits = resplit(rows, splits, self.iden_resplit, self.seed)
        return identification_split(rows, splits, path)

    def train_dataloader(self) -> DataLoader:
        if self.shards.dir:
            if self.iden_split or self.sampler is not None or self.extra_labels:
                raise ConfigError(
                    "data.shards streams shuffled utterances with speaker labels: it cannot be "
                    "combined with data.iden_split, data.sampler or data.extra_labels"
                )
            if self.speed_classes or self.chunk_samples:
                raise ConfigError(
                    "data.shards does not speed-perturb or chunk: set data.speed_classes=[] "
                    "and data.chunk_seconds=null (or train from the files)"
                )
            speaker_class = {s: i for i, s in enumerate(self.speakers)}
            self._train_loader = shard_loader(
                self.shards,
                speaker_class,
                self.crop_samples,
                self.batch_size,
                self.num_workers,
                self.pin_memory,
                self.augment,
                self.trainer,
            )
        else:
            rows, labels, speeds = self.train_rows, self._train_labels, self._train_speeds
            if self.chunk_samples:  # SpeechBrain's epoch: a crop per whole chunk of each file
                rows, labels, speeds = chunked_epoch(rows, labels, speeds, self.chunk_samples)
                files = len(self.train_rows)
                log.info("data.chunk_seconds: %d crops of %d files an epoch", len(rows), files)
            dataset = CropDataset(
                [self.manifest.audio_path(u) for u in rows],
                [u.num_samples for u in rows],
                labels,
                self.crop_samples,
                self.sample_rate,
                self.augment,
                speeds,
                **self._random_speeds(),
            )
            speakers = labels if labels.ndim == 1 else labels[:, 0]
            self._train_loader = file_loader(
                dataset,
                speakers,
                self.batch_size,
                self.num_workers,
                self.pin_memory,
                self.sampler,
            )
        if self._resume_position:
            self._train_loader.resume_at(self._resume_position)
            self._resume_position = None
        return self._train_loader

    def state_dict(self) -> dict:
        """Saved in checkpoints: the training loader's position (exact mid-epoch resumption)."""
        if self._train_loader is None:
            return {}
        return {"train_position": self._train_loader.position()}

    def load_state_dict(self, state: dict) -> None:
        self._resume_position = state.get("train_position")

    def _eval_loader(self, trials: TrialSet | None) -> DataLoader:
        if trials is None:
            raise ConfigError("no trial list configured for this stage (data.test_trials is null)")
        return eval_loader(trials, self.manifest, self.eval, self.sample_rate, self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_trials)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_trials)
