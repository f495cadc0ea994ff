"""EmbeddingDataModule: enhancement training from an embedding store, speaker-disjoint splits.

Inputs are the store's utterance embeddings (L2-normalized mean of crops); each training
speaker's target is computed from its training utterances:

- type ``B``: mean over crops → L2 → mean over the speaker's utterances;
- type ``C``: mean over crops → mean over utterances → L2.

Batches are ``(x (B,D), labels (B,3))`` with label columns speaker class, session index and
another speaker (the contract of :mod:`speakerid.losses.targets`); validation and test batches are
``(x, row)`` over the unique utterances of their trial lists.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from speakerid.data.embedding_store import EmbeddingStore
from speakerid.data.enhancement_lists import read, utt_id
from speakerid.data.splits import split_speakers
from speakerid.data.trials import make_trials, read_trials
from speakerid.errors import ConfigError, ListFileError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreTrials:
    """Trials over store rows: ``rows`` (U,) unique store rows; ``enroll``/``test`` index them."""

    rows: Tensor
    enroll: Tensor
    test: Tensor
    labels: Tensor

    @classmethod
    def from_pairs(cls, pairs: list[tuple[int, int, int]]) -> "StoreTrials":
        triples = torch.tensor(pairs, dtype=torch.long).reshape(-1, 3)
        rows, inverse = torch.unique(triples[:, 1:], return_inverse=True)
        return cls(rows, inverse[:, 0], inverse[:, 1], triples[:, 0])


def speaker_targets(crops: np.ndarray, labels: np.ndarray, num: int, kind: str) -> Tensor:
    """(S,D) targets from (N,C,D) crop embeddings of labelled utterances (type B or C).

    Example:
        >>> crops = np.array([[[3.0, 4.0]], [[0.0, 2.0]]])  # two utterances of speaker 0
        >>> speaker_targets(crops, np.array([0, 0]), 1, "B")  # mean of (.6,.8) and (0,1)
        tensor([[0.3000, 0.9000]])
        >>> speaker_targets(crops, np.array([0, 0]), 1, "C")  # L2 of the mean (1.5, 3)
        tensor([[0.4472, 0.8944]])
    """
    if kind not in ("B", "C"):
        raise ConfigError(f"data.target_type must be 'B' or 'C', got {kind!r}")
    mean = torch.from_numpy(np.asarray(crops, dtype=np.float32).mean(axis=1))
    if kind == "B":
        mean = torch.nn.functional.normalize(mean, dim=1)
    index = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    sums = torch.zeros(num, mean.shape[1]).index_add_(0, index, mean)
    targets = sums / torch.bincount(index, minlength=num).clamp_min(1)[:, None].float()
    return torch.nn.functional.normalize(targets, dim=1) if kind == "C" else targets


class _Rows(Dataset):
    def __init__(self, x: Tensor, labels: Tensor) -> None:
        self.x, self.labels = x, labels

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.x[index], self.labels[index]


class _PerSpeakerBatches:
    """Batches of one speaker's utterances each (shuffled), at most ``batch_size`` long."""

    def __init__(self, speakers: Tensor, batch_size: int) -> None:
        self.groups = [torch.nonzero(speakers == s).flatten() for s in speakers.unique()]
        self.batch_size = batch_size

    def _batches(self, generator: torch.Generator | None = None) -> list[Tensor]:
        out = []
        for group in self.groups:
            group = group[torch.randperm(len(group), generator=generator)]
            out += list(group.split(self.batch_size))
        return [out[i] for i in torch.randperm(len(out), generator=generator)]

    def __iter__(self):
        return iter(b.tolist() for b in self._batches())

    def __len__(self) -> int:
        return sum(-(-len(g) // self.batch_size) for g in self.groups)


class EmbeddingDataModule(L.LightningDataModule):
    """Speaker-disjoint train / validation / test over an embedding store.

    Args:
        store: the store folder written by ``speakerid-embed``.
        num_speakers: training speakers (classes) expected; checked in :meth:`setup`.
        embed_dim: embedding size expected; checked against the store.
        target_type: ``B`` or ``C`` (module docstring).
        batching: ``random`` or ``per_speaker`` (one speaker's utterances per batch, for the
            domain-adaptation losses, which compare same- and cross-session pairs).
        batch_size: training batch size.
        val_speakers: training-side speakers held out for validation EER (seeded choice).
        val_trials_per_utterance: target (and non-target) partners per validation utterance.
        test_trials: trial list file; None: the one recorded in the store (the corpus's test
            list). Its speakers never train.
        train_list: a "normal" list (``spk path``) restricting the training utterances.
        triplet_list: a triplet list (``spk path other_spk``) fixing each training utterance's
            other speaker; without it the other speaker is drawn per batch.
        eval_batch_size: utterances per validation/test batch.
        seed: seeds the validation split and trials.
    """

    def __init__(
        self,
        store: str,
        num_speakers: int,
        embed_dim: int,
        target_type: str = "B",
        batching: str = "random",
        batch_size: int = 256,
        val_speakers: int = 16,
        val_trials_per_utterance: int = 4,
        test_trials: str | None = None,
        train_list: str | None = None,
        triplet_list: str | None = None,
        eval_batch_size: int = 4096,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if batching not in ("random", "per_speaker"):
            raise ConfigError(f"data.batching must be 'random' or 'per_speaker', got {batching!r}")
        self.store_path = store
        self.num_speakers = num_speakers
        self.embed_dim = embed_dim
        self.target_type = target_type
        self.batching = batching
        self.batch_size = batch_size
        self.val_speakers = val_speakers
        self.val_trials_per_utterance = val_trials_per_utterance
        self.test_trials_path = test_trials
        self.train_list = train_list
        self.triplet_list = triplet_list
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.store: EmbeddingStore | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.store is not None:
            return
        store = self.store = EmbeddingStore(self.store_path)
        if store.dim != self.embed_dim:
            raise ConfigError(
                f"data.embed_dim={self.embed_dim}, but {store.root} holds {store.dim}-d embeddings:"
                f" set data.embed_dim={store.dim}"
            )
        self.x = store.mean()
        path = self.test_trials_path or store.meta.get("trials")
        self.test_trials = self._resolve(Path(path)) if path else None
        held_out = (
            {store.speakers[r] for r in self.test_trials.rows.tolist()}
            if self.test_trials
            else set()
        )
        candidates = range(len(store))
        if self.train_list:
            listed = {utt_id(fields[1]) for fields in read(self.train_list, "normal")}
            candidates = [r for r in candidates if store.ids[r] in listed]
        dev_rows = [r for r in candidates if store.speakers[r] not in held_out]
        dev = sorted({store.speakers[r] for r in dev_rows})
        self.speakers, val = split_speakers(
            dev,
            self.val_speakers,
            self.num_speakers if stage in (None, "fit") else None,
            self.seed,
            store.root,
        )
        label = {s: i for i, s in enumerate(self.speakers)}
        self.train_rows = torch.tensor([r for r in dev_rows if store.speakers[r] in label])
        speakers = torch.tensor([label[store.speakers[r]] for r in self.train_rows.tolist()])
        self.targets = speaker_targets(
            store.array[self.train_rows.numpy()],
            speakers.numpy(),
            len(self.speakers),
            self.target_type,
        )
        session_index: dict[tuple[str, str], int] = {}
        sessions = torch.tensor(
            [
                session_index.setdefault((store.speakers[r], store.sessions[r]), len(session_index))
                for r in self.train_rows.tolist()
            ]
        )
        self.train_labels = torch.stack([speakers, sessions, self._others(speakers)], dim=1)
        val_rows = [r for r in dev_rows if store.speakers[r] in val]
        pairs = make_trials(
            [store.speakers[r] for r in val_rows],
            [store.sessions[r] for r in val_rows],
            [""] * len(val_rows),
            self.val_trials_per_utterance,
            self.seed,
        )
        self.val_trials = StoreTrials.from_pairs(
            [(label, val_rows[a], val_rows[b]) for label, a, b in pairs]
        )
        log.info(
            "enhancement: %d training embeddings of %d speakers (targets type %s); validation %d "
            "trials; test %s",
            len(self.train_rows),
            len(self.speakers),
            self.target_type,
            len(self.val_trials.labels),
            f"{len(self.test_trials.labels)} trials" if self.test_trials else "none",
        )

    def _resolve(self, path: Path) -> StoreTrials:
        """A trial list's pairs as store rows; every path must be in the store."""
        pairs, missing = [], []
        for trial in read_trials(path):
            ends = [self.store.row_of(utt_id(p)) for p in (trial.enroll, trial.test)]
            if None in ends:
                missing.append(f"{path}:{trial.line}")
                continue
            pairs.append((trial.label, *ends))
        if missing:
            raise ListFileError(
                f"{len(missing)} trial(s) name utterances missing from the store "
                f"{self.store.root}, e.g. {', '.join(missing[:3])}"
            )
        return StoreTrials.from_pairs(pairs)

    def _others(self, speakers: Tensor) -> Tensor:
        """The other-speaker column: from the triplet list, or -1 (drawn per batch)."""
        others = torch.full_like(speakers, -1)
        if not self.triplet_list:
            return others
        label = {s: i for i, s in enumerate(self.speakers)}
        fixed: dict[str, int] = {}
        for _, path, other in read(self.triplet_list, "triplet"):
            if other not in label:
                raise ListFileError(f"{self.triplet_list}: {other} is not a training speaker")
            fixed[utt_id(path)] = label[other]
        for i, r in enumerate(self.train_rows.tolist()):
            others[i] = fixed.get(self.store.ids[r], -1)
        return others

    def _collate(self, items: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        x = torch.stack([x for x, _ in items])
        labels = torch.stack([label for _, label in items]).clone()
        drawn = labels[:, 2] < 0  # another speaker, uniformly among the rest
        shift = torch.randint(1, len(self.speakers), (int(drawn.sum()),))
        labels[drawn, 2] = (labels[drawn, 0] + shift) % len(self.speakers)
        return x, labels

    def train_dataloader(self) -> DataLoader:
        dataset = _Rows(self.x[self.train_rows], self.train_labels)
        if self.batching == "per_speaker":
            sampler = _PerSpeakerBatches(self.train_labels[:, 0], self.batch_size)
            return DataLoader(dataset, batch_sampler=sampler, collate_fn=self._collate)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=len(dataset) > self.batch_size,
            collate_fn=self._collate,
        )

    def _eval_loader(self, trials: StoreTrials | None) -> DataLoader:
        if trials is None:
            raise ConfigError("no test trial list: set data.test_trials")
        dataset = _Rows(self.x[trials.rows], torch.arange(len(trials.rows)))
        return DataLoader(dataset, batch_size=self.eval_batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_trials)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_trials)

    def all_embeddings(self) -> DataLoader:
        """Every store row, in order (for writing the enhanced store)."""
        return DataLoader(_Rows(self.x, torch.arange(len(self.x))), batch_size=self.eval_batch_size)
