"""Map-style datasets over a manifest and the batch they collate into."""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from scipy import signal
from torch import Tensor
from torch.utils.data import Dataset

from speakerid.data.audio import read_audio


class SpeakerBatch(NamedTuple):
    """(B,S) waveforms, (B,) sample counts, (B,) speaker labels (-1: unknown), (B,) dataset rows."""

    wav: Tensor
    lengths: Tensor
    labels: Tensor
    index: Tensor


class CropDataset(Dataset):
    """Random fixed-length crops for training; shorter files are repeated to fill the crop.

    Items are ``(index, seed)`` pairs from a :class:`~speakerid.data.samplers.ResumableSampler`:
    the crop offset and the augmentation come from that seed alone, so they depend neither on the
    worker nor on what came before (exact resumption). A plain integer index draws its seed from
    torch's worker-seeded RNG instead.

    Args:
        paths: audio files.
        num_samples: length of each file in samples (from the manifest; no header reads here).
        labels: speaker class of each file, or (N,K) rows (speaker first, then metadata labels).
        crop_samples: samples per crop.
        sample_rate: rate every file has.
        augment: ``(wav, rng) -> wav`` applied to each crop, or None.
        speeds: per file, a speed factor applied to its crops (files listed again with another
            factor become new speaker classes: Kaldi's speed-perturbed copies), or None.
        random_speeds: instead, each crop draws its speed from these factors (uniformly), and
            factor ``k`` shifts the speaker class by ``k * speed_class_offset`` (WeSpeaker's
            speed perturbation: every file once per epoch, three times the classes).
        speed_class_offset: the number of speakers, with ``random_speeds``.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        num_samples: Sequence[int],
        labels: Sequence[int],
        crop_samples: int,
        sample_rate: int,
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        speeds: Sequence[float] | None = None,
        random_speeds: Sequence[float] = (),
        speed_class_offset: int = 0,
    ) -> None:
        if speeds is not None and len(random_speeds):
            raise ValueError("CropDataset: per-file speeds or random speeds, not both")
        self.paths = list(paths)
        self.num_samples = np.asarray(num_samples, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.crop_samples = crop_samples
        self.sample_rate = sample_rate
        self.augment = augment
        self.speeds = None if speeds is None else np.asarray(speeds, dtype=np.float64)
        self.random_speeds = [float(f) for f in random_speeds]
        self.speed_class_offset = speed_class_offset

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[np.ndarray, int, int]:
        if isinstance(item, tuple):  # (index, seed) from a ResumableSampler
            index, rng = item[0], np.random.default_rng(item[1])
        else:  # a plain sampler: draws from torch's (worker-seeded) RNG
            index, rng = item, np.random.default_rng(int(torch.randint(2**62, ())))
        speed, shift = 1.0 if self.speeds is None else float(self.speeds[index]), 0
        if self.random_speeds:
            k = int(rng.integers(len(self.random_speeds)))
            speed, shift = self.random_speeds[k], k * self.speed_class_offset
        crop = round(self.crop_samples * speed)  # read this much, then play it ``speed`` x faster
        total = int(self.num_samples[index])
        if total >= crop:
            start = int(rng.integers(total - crop + 1))
            wav = read_audio(self.paths[index], self.sample_rate, start, crop, True)
        else:
            wav = np.resize(read_audio(self.paths[index], self.sample_rate, convert=True), crop)
        if speed != 1.0:
            wav = signal.resample_poly(wav, 100, round(100 * speed)).astype(np.float32)
            wav = np.resize(wav, self.crop_samples)
        if self.augment is not None:
            wav = self.augment(wav, rng)
        label = self.labels[index]
        if label.ndim == 0:
            return wav, int(label) + shift, index
        if shift:
            label = label.copy()
            label[0] += shift
        return wav, label, index


class UtteranceDataset(Dataset):
    """Whole utterances (optionally capped at ``max_samples`` from the start), for embedding."""

    def __init__(
        self, paths: Sequence[Path], sample_rate: int, max_samples: int | None = None
    ) -> None:
        self.paths = list(paths)
        self.sample_rate = sample_rate
        self.max_samples = max_samples

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int, int]:
        wav = read_audio(self.paths[index], self.sample_rate, convert=True)
        return wav[: self.max_samples], -1, index  # [:None] keeps all


class MultiCropDataset(Dataset):
    """``num_crops`` evenly spaced crops of each utterance, for multi-crop embedding.

    Item ``i`` is crop ``i % num_crops`` of utterance ``i // num_crops``; its index is ``i``, so
    embeddings can be put back as ``(U, num_crops, D)``. The first crop starts at the beginning,
    the last ends at the end; utterances shorter than a crop are repeated to fill it.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        num_samples: Sequence[int],
        sample_rate: int,
        crop_samples: int,
        num_crops: int,
    ) -> None:
        if num_crops < 1 or crop_samples < 1:
            raise ValueError(f"num_crops ({num_crops}), crop_samples ({crop_samples}) must be > 0")
        self.paths = list(paths)
        self.num_samples = np.asarray(num_samples, dtype=np.int64)
        self.sample_rate = sample_rate
        self.crop_samples = crop_samples
        self.num_crops = num_crops

    def __len__(self) -> int:
        return len(self.paths) * self.num_crops

    def __getitem__(self, index: int) -> tuple[np.ndarray, int, int]:
        utterance, crop = divmod(index, self.num_crops)
        total = int(self.num_samples[utterance])
        if total <= self.crop_samples:
            wav = read_audio(self.paths[utterance], self.sample_rate, convert=True)
            return np.resize(wav, self.crop_samples), -1, index
        start = crop_start(total, self.crop_samples, self.num_crops, crop)
        wav = read_audio(self.paths[utterance], self.sample_rate, start, self.crop_samples, True)
        return wav, -1, index


def crop_start(total: int, crop_samples: int, num_crops: int, crop: int) -> int:
    """The first sample of crop ``crop`` of ``num_crops`` evenly spaced crops of ``crop_samples``
    in ``total`` samples (more than a crop): the first at the start, the last at the end, one
    crop in the middle."""
    span = total - crop_samples
    return round(crop * span / (num_crops - 1)) if num_crops > 1 else span // 2


def collate(items: Sequence[tuple[np.ndarray, int, int]]) -> SpeakerBatch:
    """Zero-pad waveforms to the longest one and stack."""
    lengths = torch.tensor([len(wav) for wav, _, _ in items])
    wav = torch.zeros(len(items), int(lengths.max()))
    for row, (samples, _, _) in enumerate(items):
        wav[row, : len(samples)] = torch.from_numpy(samples)
    labels = torch.as_tensor(np.stack([np.asarray(label) for _, label, _ in items]))
    index = torch.tensor([i for _, _, i in items])
    return SpeakerBatch(wav, lengths, labels, index)
