"""SpeakerDataModule: speaker-disjoint train / validation / test from one corpus."""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from speakerid.contracts import Corpus, list_prefix, reserved_speakers
from speakerid.data.datasets import CropDataset, MultiCropDataset, UtteranceDataset, collate
from speakerid.data.manifest import Manifest, Utterance
from speakerid.data.samplers import ResumableLoader, ResumableSampler
from speakerid.data.shards import ShardDataset, ShardLoader
from speakerid.data.trials import Trial, make_trials, read_iden_split, read_trials
from speakerid.errors import ConfigError, ListFileError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialSet:
    """Trials over a table of unique utterances, each to be embedded once.

    ``utterances`` is sorted longest first so that eval batches carry little padding;
    ``enroll``/``test`` index into it.
    """

    name: str
    utterances: list[Utterance]
    enroll: Tensor  # (N,) long
    test: Tensor  # (N,) long
    labels: Tensor  # (N,) long, 1 = same speaker

    @classmethod
    def from_pairs(
        cls, name: str, utterances: list[Utterance], pairs: list[tuple[int, int, int]]
    ) -> "TrialSet":
        order = sorted(range(len(utterances)), key=lambda i: -utterances[i].num_samples)
        new_index = np.empty(len(order), dtype=np.int64)
        new_index[order] = np.arange(len(order))
        triples = torch.tensor(pairs, dtype=torch.long).reshape(-1, 3)
        remap = torch.from_numpy(new_index)
        return cls(
            name,
            [utterances[i] for i in order],
            remap[triples[:, 1]],
            remap[triples[:, 2]],
            triples[:, 0],
        )

    def extended(self, extra: list[Utterance]) -> "tuple[TrialSet, Tensor]":
        """This trial set over more utterances (embedded alongside), and the rows of ``extra``.

        Utterances already present keep one row; the table is re-sorted longest first.
        """
        position = {u.utt_id: i for i, u in enumerate(self.utterances)}
        utterances = list(self.utterances)
        for u in extra:
            if u.utt_id not in position:
                position[u.utt_id] = len(utterances)
                utterances.append(u)
        order = sorted(range(len(utterances)), key=lambda i: -utterances[i].num_samples)
        new_index = torch.empty(len(order), dtype=torch.long)
        new_index[order] = torch.arange(len(order))
        trials = TrialSet(
            self.name,
            [utterances[i] for i in order],
            new_index[self.enroll],
            new_index[self.test],
            self.labels,
        )
        rows = new_index[torch.tensor([position[u.utt_id] for u in extra], dtype=torch.long)]
        return trials, rows


def resolve_trials(
    name: str, trials: list[Trial], manifest: Manifest, source: Path, prefix: str = ""
) -> TrialSet:
    """Map a trial list's paths onto manifest rows; every path must be a corpus utterance.
    ``prefix`` goes in front of every path (the member name, for combined corpora)."""
    position: dict[str, int] = {}  # utt_id -> index into ``utterances``
    utterances: list[Utterance] = []
    pairs, missing = [], []
    for trial in trials:
        ends = []
        for path in (trial.enroll, trial.test):
            utt_id = prefix + str(PurePosixPath(path).with_suffix(""))
            if utt_id not in position:
                row = manifest.index_of(utt_id)
                if row is None:
                    missing.append(f"{source}:{trial.line}: {path}")
                    continue
                position[utt_id] = len(utterances)
                utterances.append(manifest[row])
            ends.append(position[utt_id])
        if len(ends) == 2:
            pairs.append((trial.label, *ends))
    if missing:
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise ListFileError(
            f"{len(missing)} trial path(s) name no utterance of the corpus at {manifest.root}"
            f" (missing, or skipped as bad){more}:\n  " + "\n  ".join(missing[:5])
        )
    return TrialSet.from_pairs(name, utterances, pairs)


def split_off(
    speakers: list[str], count: float, seed: int, what: str, where
) -> tuple[list[str], set[str]]:
    """(the rest in order, a seeded set of ``count`` speakers — or that fraction when < 1)."""
    number = round(count * len(speakers)) if 0 < count < 1 else int(count)
    if not 0 < number < len(speakers):
        raise ConfigError(
            f"data.{what}_speakers={count} must give between 1 and {len(speakers) - 1} speakers "
            f"(a count, or a fraction below 1): {where} has {len(speakers)} to split"
        )
    chosen = set(np.random.default_rng(seed).choice(speakers, number, replace=False).tolist())
    return [s for s in speakers if s not in chosen], chosen


def split_speakers(
    dev: list[str], val_speakers: float, num_speakers: int | None, seed: int, where
) -> tuple[list[str], set[str]]:
    """Training speakers (in ``dev`` order) and a seeded set of ``val_speakers`` validation ones
    (a count, or a fraction of ``dev`` when below 1).

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


class SpeakerDataModule(L.LightningDataModule):
    """Training crops and validation/test trials from one corpus, with disjoint speakers.

    Speakers in the test trial list never reach training. Of the rest, ``val_speakers`` (chosen
    with ``seed``) give a generated validation trial list and the others are the training classes,
    whose count must equal ``num_speakers`` (the loss heads are built from it).

    Args:
        corpus: a reader (``prepare()``, ``manifest()``, ``trial_path()``).
        num_speakers: training classes expected; checked in :meth:`setup`.
        sample_rate: rate of every file.
        crop_seconds: training crop length.
        batch_size, num_workers: training loader.
        val_speakers: held out from training for validation EER (a count, or a fraction < 1).
        test_speakers: with ``test_trials=None``: held out for a generated test trial list (a
            count or a fraction < 1, chosen with ``seed``); 0: no test set. For corpora without
            trial lists (VoxForge, CommonVoice, combinations).
        val_trials_per_utterance: target (and non-target) partners per validation utterance.
        test_trials: trial list file name in the corpus root, or None.
        eval_batch_size: utterances per validation/test batch.
        eval_max_seconds: cap on utterance length when embedding (None: whole utterances).
        eval_crops: embed each eval utterance as the mean of this many evenly spaced crops of
            ``eval_crop_seconds`` (0: whole utterances, one embedding each).
        eval_crop_seconds: length of those crops.
        seed: seeds the validation split and trials.
        pin_memory: pin batches (for GPU training).
        augment: ``(wav, rng) -> wav`` for training crops (the ``augment`` config group), or None.
        iden_split: an identification split list in the corpus root (``iden_split.txt``), or
            None. When given, training speakers train on their split-1 files only and their
            split-3 files become ``iden_test_rows`` (closed-set identification by the classifier).
        shards: a folder of WebDataset shards of this corpus (``speakerid-prepare shards=...``):
            training streams from them instead of reading files (validation and test still read
            files; resumption stays exact mid-epoch).
        shard_mode: ``epoch`` (one pass per epoch, every rank the same number of batches) or
            ``infinite`` (one endless epoch: train with ``trainer.max_steps`` and an integer
            ``trainer.val_check_interval``).
        shard_buffer: utterances shuffled together when streaming shards.
        sampler: a partial of a batch sampler over the training speakers, such as
            :class:`~speakerid.data.samplers.SpeakerBatchSampler` (N x M batches; its N*M
            replaces ``batch_size``), or None: shuffled utterances.
        extra_labels: metadata labels added after the speaker (``gender``, ``language``, ...):
            training labels become (B, 1 + K), for multi-task heads.
        speed_classes: speed factors (e.g. ``[0.9, 1.1]``) whose perturbed copies of every
            training file are new speakers (Kaldi's recipe): the classes, and ``num_speakers``,
            grow to ``speakers x (1 + len(speed_classes))``.
        max_speakers: train on the first n training speakers only (sorted ids; the ResNet-18
            system's first 200), the others left out; None: all.
        iden_resplit: with ``iden_split``: ignore its split column and split each training
            speaker's files at random (``seed``) into these train/dev/test fractions, e.g.
            ``[0.6, 0.2, 0.2]``.
    """

    def __init__(
        self,
        corpus: Corpus,
        num_speakers: int,
        sample_rate: int = 16000,
        crop_seconds: float = 2.0,
        batch_size: int = 64,
        num_workers: int = 2,
        val_speakers: float = 16,
        val_trials_per_utterance: int = 4,
        test_trials: str | None = "veri_test2.txt",
        eval_batch_size: int = 16,
        eval_max_seconds: float | None = None,
        eval_crops: int = 0,
        eval_crop_seconds: float = 4.0,
        seed: int = 0,
        pin_memory: bool = False,
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        iden_split: str | None = None,
        shards: str | None = None,
        test_speakers: float = 0,
        sampler: Callable | None = None,
        extra_labels: Sequence[str] = (),
        speed_classes: Sequence[float] = (),
        max_speakers: int | None = None,
        iden_resplit: Sequence[float] | None = None,
        shard_mode: str = "epoch",
        shard_buffer: int = 1000,
    ) -> None:
        super().__init__()
        self.corpus = corpus
        self.num_speakers = num_speakers
        self.sample_rate = sample_rate
        self.crop_samples = int(crop_seconds * sample_rate)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_speakers = val_speakers
        self.val_trials_per_utterance = val_trials_per_utterance
        self.test_trials_name = test_trials
        self.eval_batch_size = eval_batch_size
        self.eval_max_samples = int(eval_max_seconds * sample_rate) if eval_max_seconds else None
        if eval_crops < 0:
            raise ConfigError(f"data.eval_crops must be >= 0 (0: whole utterances): {eval_crops}")
        self.eval_crops = eval_crops
        self.eval_crop_samples = int(eval_crop_seconds * sample_rate)
        self.seed = seed
        self.pin_memory = pin_memory
        self.augment = augment
        self.iden_split = iden_split
        self.shards = shards
        self.shard_mode = shard_mode
        self.test_speakers = test_speakers
        self.sampler = sampler
        self.extra_labels = list(extra_labels)
        self.speed_classes = [float(f) for f in speed_classes]
        if any(f <= 0 or f == 1.0 for f in self.speed_classes):
            raise ConfigError(f"data.speed_classes: factors other than 1.0, got {speed_classes}")
        self._train_speeds: np.ndarray | None = None
        self.max_speakers = max_speakers
        if iden_resplit is not None and (
            len(iden_resplit) != 3 or abs(sum(iden_resplit) - 1) > 1e-6
        ):
            raise ConfigError(
                f"data.iden_resplit: three fractions summing to 1, got {iden_resplit}"
            )
        self.iden_resplit = None if iden_resplit is None else [float(f) for f in iden_resplit]
        self.label_vocab: dict[str, list[str]] = {}
        self.shard_buffer = shard_buffer
        self.iden_test_rows: list[Utterance] = []  # split 3 of the training speakers
        self._train_loader: ResumableLoader | ShardLoader | None = None
        self._resume_position: dict | None = None
        self.manifest: Manifest | None = None
        self.speakers: list[str] = []  # training class i is speakers[i]
        self.train_rows: list[Utterance] = []
        self.val_trials: TrialSet | None = None
        self.test_trials: TrialSet | None = None

    def prepare_data(self) -> None:
        self.corpus.prepare()

    def setup(self, stage: str | None = None) -> None:
        if self.manifest is not None:
            return
        self.manifest = self.corpus.manifest()
        held_out: set[str] = set()
        where = self.manifest.root if str(self.manifest.root) != "/" else "the combined corpora"
        if self.test_trials_name:
            path = self.corpus.trial_path(self.test_trials_name)
            prefix = list_prefix(self.corpus, self.test_trials_name)
            trials = read_trials(path)
            self.test_trials = resolve_trials("test", trials, self.manifest, path, prefix)
            held_out = {u.speaker for u in self.test_trials.utterances}
        held_out |= reserved_speakers(self.corpus, self.manifest)
        dev = [s for s in self.manifest.speakers if s not in held_out]
        if self.test_speakers:
            if self.test_trials_name:
                raise ConfigError("set data.test_trials=null to use data.test_speakers")
            dev, test = split_off(dev, self.test_speakers, self.seed + 1, "test", where)
            self.test_trials = self._generated_trials("test", test)
        plain = not (self.max_speakers or self.speed_classes)  # classes = the training speakers
        check = self.num_speakers if stage in (None, "fit") and plain else None
        self.speakers, val = split_speakers(dev, self.val_speakers, check, self.seed, where)
        if self.max_speakers:
            self.speakers = sorted(self.speakers)[: self.max_speakers]
        label = {s: i for i, s in enumerate(self.speakers)}
        self.train_rows = [u for u in self.manifest if u.speaker in label]
        if self.iden_split:
            self.train_rows, self.iden_test_rows = self._split_identification(self.train_rows)
        self._train_labels = self._labels(label)
        if self.speed_classes:
            self._add_speed_classes()
        checked = stage in (None, "fit") and self.num_speakers is not None
        if not plain and checked and len(self.speakers) != self.num_speakers:
            raise ConfigError(
                f"data.num_speakers={self.num_speakers}, but {where} gives {len(self.speakers)} "
                f"training classes (data.max_speakers={self.max_speakers}, data.speed_classes="
                f"{self.speed_classes}): set data.num_speakers={len(self.speakers)}"
            )
        self.val_trials = self._generated_trials("val", val)
        log.info(
            "training: %d utterances of %d speakers; validation: %d trials of %d; test: %s",
            len(self.train_rows),
            len(self.speakers),
            len(self.val_trials.labels),
            len(self.val_trials.utterances),
            f"{len(self.test_trials.labels)} trials" if self.test_trials else "none",
        )

    def _labels(self, speaker_class: dict[str, int]) -> np.ndarray:
        """(N,) speaker classes, or (N, 1 + K) with the ``extra_labels`` columns (-100 where the
        corpus states nothing); each metadata vocabulary is the sorted training values."""
        speakers = np.array([speaker_class[u.speaker] for u in self.train_rows], dtype=np.int64)
        if not self.extra_labels:
            return speakers
        columns = [speakers]
        self.label_vocab = {}
        for name in self.extra_labels:
            if name not in ("gender", "language", "age", "accent"):
                raise ConfigError(
                    f"data.extra_labels: unknown {name!r} (gender, language, age, accent)"
                )
            values = [getattr(u, name) for u in self.train_rows]
            vocab = sorted({v for v in values if v})
            if not vocab:
                raise ConfigError(f"data.extra_labels: the corpus states no {name} for any speaker")
            self.label_vocab[name] = vocab
            index = {v: i for i, v in enumerate(vocab)}
            columns.append(np.array([index.get(v, -100) for v in values], dtype=np.int64))
            log.info("label %s: %s", name, ", ".join(vocab))
        return np.stack(columns, axis=1)

    def _resplit(self, rows: list[Utterance], listed: dict[str, int]) -> dict[str, int]:
        """Each speaker's listed files shuffled (``seed``) and cut by ``iden_resplit``."""
        rng = np.random.default_rng([self.seed, 3])
        by_speaker: dict[str, list[str]] = {}
        for u in rows:
            if u.utt_id in listed:
                by_speaker.setdefault(u.speaker, []).append(u.utt_id)
        train_part, dev_part, _ = self.iden_resplit  # type: ignore[misc]
        out = {}
        for speaker in sorted(by_speaker):
            files = [by_speaker[speaker][i] for i in rng.permutation(len(by_speaker[speaker]))]
            a = round(train_part * len(files))
            b = a + round(dev_part * len(files))
            out.update({f: 1 if i < a else 2 if i < b else 3 for i, f in enumerate(files)})
        return out

    def _add_speed_classes(self) -> None:
        """Every training file again at each speed factor, as a new speaker class."""
        n, copies = len(self.speakers), 1 + len(self.speed_classes)
        labels = [self._train_labels]
        for k in range(1, copies):
            shifted = self._train_labels.copy()
            if shifted.ndim == 1:
                shifted += k * n
            else:
                shifted[:, 0] += k * n
            labels.append(shifted)
        self._train_labels = np.concatenate(labels)
        self._train_speeds = np.repeat([1.0, *self.speed_classes], len(self.train_rows))
        self.train_rows = self.train_rows * copies
        self.speakers = self.speakers + [
            f"{s}@speed{f}" for f in self.speed_classes for s in self.speakers
        ]

    def _generated_trials(self, name: str, speakers: set[str]) -> TrialSet:
        """Trials among all utterances of ``speakers`` (same and different speaker)."""
        rows = [u for u in self.manifest if u.speaker in speakers]
        pairs = make_trials(
            [u.speaker for u in rows],
            [u.session for u in rows],
            [f"{u.language}/{u.gender}" for u in rows],
            self.val_trials_per_utterance,
            self.seed,
        )
        return TrialSet.from_pairs(name, rows, pairs)

    def _split_identification(
        self, rows: list[Utterance]
    ) -> tuple[list[Utterance], list[Utterance]]:
        """(split-1 rows, split-3 rows) of ``rows`` by the identification split list."""
        path = self.corpus.trial_path(self.iden_split)
        prefix = list_prefix(self.corpus, self.iden_split)
        splits = {
            prefix + str(PurePosixPath(p).with_suffix("")): s
            for p, s in read_iden_split(path).items()
        }
        if self.iden_resplit is not None:  # a seeded per-speaker split instead of the list's
            splits = self._resplit(rows, splits)
        unlisted = [u.utt_id for u in rows if u.utt_id not in splits]
        if unlisted:
            raise ListFileError(
                f"{path}: {len(unlisted)} training utterance(s) have no split, e.g. {unlisted[0]}"
            )
        train = [u for u in rows if splits[u.utt_id] == 1]
        test = [u for u in rows if splits[u.utt_id] == 3]
        if not train or not test:
            raise ListFileError(f"{path}: no split-1 or no split-3 files among training speakers")
        return train, test

    def train_dataloader(self) -> DataLoader:
        if self.shards:
            self._train_loader = self._shard_loader()
        else:
            self._train_loader = self._file_loader()
        if self._resume_position:
            self._train_loader.resume_at(self._resume_position)
            self._resume_position = None
        return self._train_loader

    def _shard_loader(self) -> ShardLoader:
        if self.iden_split or self.sampler is not None or self.extra_labels:
            raise ConfigError(
                "data.shards streams shuffled utterances with speaker labels: it cannot be "
                "combined with data.iden_split, data.sampler or data.extra_labels"
            )
        trainer = self.trainer
        if self.shard_mode == "infinite" and trainer is not None:
            if trainer.max_steps is None or trainer.max_steps < 0:
                raise ConfigError("data.shard_mode=infinite trains by steps: set trainer.max_steps")
            if not isinstance(trainer.val_check_interval, int):
                raise ConfigError(
                    "data.shard_mode=infinite has no epoch end to validate at: set "
                    "trainer.val_check_interval to a number of steps"
                )
        dataset = ShardDataset(
            self.shards,
            {s: i for i, s in enumerate(self.speakers)},
            self.crop_samples,
            batch_size=self.batch_size,
            workers=self.num_workers,
            seed=torch.initial_seed(),
            buffer=self.shard_buffer,
            augment=self.augment,
            mode=self.shard_mode,
        )
        if self.shard_mode == "epoch" and dataset.batches_per_epoch() == 0:
            raise ConfigError(f"{self.shards}: fewer training utterances per reader than a batch")
        return ShardLoader(
            dataset,
            num_workers=self.num_workers,
            collate_fn=collate,
            pin_memory=self.pin_memory,
        )

    def _file_loader(self) -> ResumableLoader:
        dataset = CropDataset(
            [self.manifest.audio_path(u) for u in self.train_rows],  # type: ignore[union-attr]
            [u.num_samples for u in self.train_rows],
            self._train_labels,
            self.crop_samples,
            self.sample_rate,
            self.augment,
            self._train_speeds,
        )
        if self.sampler is not None:
            speakers = (
                self._train_labels if self._train_labels.ndim == 1 else self._train_labels[:, 0]
            )
            sampler = self.sampler(labels=speakers, seed=torch.initial_seed())
            batch_size, drop_last = sampler.batch_size, True
        else:
            batch_size, drop_last = self.batch_size, len(dataset) > self.batch_size
            sampler = ResumableSampler(len(dataset), seed=torch.initial_seed(), drop_last=drop_last)
        return ResumableLoader(
            dataset,
            sampler,
            batch_size=batch_size,
            drop_last=drop_last,
            num_workers=self.num_workers,
            collate_fn=collate,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

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
        paths = [self.manifest.audio_path(u) for u in trials.utterances]  # type: ignore[union-attr]
        dataset = (
            MultiCropDataset(
                paths,
                [u.num_samples for u in trials.utterances],
                self.sample_rate,
                self.eval_crop_samples,
                self.eval_crops,
            )
            if self.eval_crops
            else UtteranceDataset(paths, self.sample_rate, self.eval_max_samples)
        )
        return DataLoader(
            dataset,
            batch_size=self.eval_batch_size,
            num_workers=self.num_workers,
            collate_fn=collate,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_trials)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_trials)
