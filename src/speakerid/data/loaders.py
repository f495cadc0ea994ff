"""The data module's loaders: training crops from files or from shards (both resumable
mid-epoch), and whole-utterance or multi-crop embedding of a trial set's utterances."""

from collections.abc import Callable
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from speakerid.data.datasets import CropDataset, MultiCropDataset, UtteranceDataset, collate
from speakerid.data.manifest import Manifest, Utterance
from speakerid.data.samplers import ResumableLoader, ResumableSampler
from speakerid.data.shards import MODES, ShardDataset, ShardLoader
from speakerid.data.trialset import TrialSet
from speakerid.errors import ConfigError

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class EvalSettings:
    """How validation and test utterances are embedded (``data.eval``).

    Args:
        batch_size: utterances per batch (1: no padding; more embed alike: backbones mask it).
        max_seconds: cap on an utterance's length (None: whole utterances).
        crops: embed each utterance as the mean of this many evenly spaced crops of
            ``crop_seconds`` (0: whole utterances, one embedding each).
        crop_seconds: length of those crops.
    """

    batch_size: int = 16
    max_seconds: float | None = None
    crops: int = 0
    crop_seconds: float = 4.0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"data.eval.batch_size must be >= 1: {self.batch_size}")
        if self.crops < 0:
            raise ConfigError(f"data.eval.crops must be >= 0 (0: whole utterances): {self.crops}")
        if self.crops and self.crop_seconds <= 0:
            raise ConfigError(f"data.eval.crop_seconds must be > 0: {self.crop_seconds}")


@dataclass(frozen=True)
class ShardSettings:
    """Training from WebDataset shards (``data.shards``; ``speakerid-prepare shards=...``).

    Args:
        dir: the shard folder; None trains from the corpus files.
        mode: ``epoch`` (a pass per epoch, every rank the same number of batches) or
            ``infinite`` (one endless epoch: ``trainer.max_steps`` and an integer
            ``trainer.val_check_interval``).
        buffer: utterances shuffled together.
    """

    dir: str | None = None
    mode: str = "epoch"
    buffer: int = 1000

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"data.shards.mode must be one of {MODES}, got {self.mode!r}")


def file_loader(
    dataset: CropDataset,
    speakers: np.ndarray,
    batch_size: int,
    num_workers: int,
    pin_memory: bool,
    sampler: Callable | None,
) -> ResumableLoader:
    """Training crops read from files: shuffled utterances, or the batches of ``sampler``
    (a partial of a batch sampler over the (N,) speaker classes)."""
    if sampler is not None:
        batches = sampler(labels=speakers, seed=torch.initial_seed())
        batch_size, drop_last = batches.batch_size, True
    else:
        drop_last = len(dataset) > batch_size
        batches = ResumableSampler(len(dataset), seed=torch.initial_seed(), drop_last=drop_last)
    return ResumableLoader(
        dataset,
        batches,
        batch_size=batch_size,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )


def shard_loader(
    settings: ShardSettings,
    speaker_class: dict[str, int],
    crop_samples: int,
    batch_size: int,
    num_workers: int,
    pin_memory: bool,
    augment: Augment | None,
    trainer: L.Trainer | None,
) -> ShardLoader:
    """Training crops streamed from shards; the trainer's settings are checked against the mode."""
    if settings.mode == "infinite" and trainer is not None:
        if trainer.max_steps is None or trainer.max_steps < 0:
            raise ConfigError("data.shards.mode=infinite trains by steps: set trainer.max_steps")
        if not isinstance(trainer.val_check_interval, int):
            raise ConfigError(
                "data.shards.mode=infinite has no epoch end to validate at: set "
                "trainer.val_check_interval to a number of steps"
            )
    dataset = ShardDataset(
        settings.dir,
        speaker_class,
        crop_samples,
        batch_size=batch_size,
        workers=num_workers,
        seed=torch.initial_seed(),
        buffer=settings.buffer,
        augment=augment,
        mode=settings.mode,
    )
    if settings.mode == "epoch" and dataset.batches_per_epoch() == 0:
        raise ConfigError(f"{settings.dir}: fewer training utterances per reader than a batch")
    return ShardLoader(dataset, num_workers=num_workers, collate_fn=collate, pin_memory=pin_memory)


def eval_loader(
    trials: TrialSet, manifest: Manifest, settings: EvalSettings, sample_rate: int, workers: int
) -> DataLoader:
    """The unique utterances of ``trials``, in table order: whole or as ``settings.crops`` crops."""
    rows: list[Utterance] = trials.utterances
    paths = [manifest.audio_path(u) for u in rows]
    if settings.crops:
        crop_samples = int(settings.crop_seconds * sample_rate)
        lengths = [u.num_samples for u in rows]
        dataset = MultiCropDataset(paths, lengths, sample_rate, crop_samples, settings.crops)
    else:
        cap = int(settings.max_seconds * sample_rate) if settings.max_seconds else None
        dataset = UtteranceDataset(paths, sample_rate, cap)
    return DataLoader(
        dataset, batch_size=settings.batch_size, num_workers=workers, collate_fn=collate
    )
