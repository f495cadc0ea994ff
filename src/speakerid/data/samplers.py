"""A training sampler and loader that resume exactly, mid-epoch included.

Everything random about an epoch is a function of ``(seed, epoch)``: the shuffled order, and each
item's own seed for its crop and augmentation (the sampler yields ``(index, item_seed)``), so the
data does not depend on worker count or timing, and a run restored from a checkpoint saved after
``k`` batches sees exactly the batches an uninterrupted run would have seen next.

The data module saves the loader's :meth:`ResumableLoader.position` in its own ``state_dict`` (in
every checkpoint) and gives it back to the next loader it makes. (Lightning's loader-level
``state_dict`` protocol is not used: Lightning creates the training iterator while estimating the
schedule length, before it restores loop states, so loader states would arrive too late.) The
position is the number of batches the *training loop* has finished — kept up to date by
:class:`speakerid.callbacks.TrackTrainingBatches` — not the number the loader has produced, which
runs ahead by Lightning's prefetching.
"""

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler


class ResumableSampler(DistributedSampler):
    """Seeded per-epoch shuffling with per-item seeds; shards across processes like
    :class:`~torch.utils.data.DistributedSampler` (so Lightning does not replace it under DDP).

    Args:
        size: dataset length.
        seed: base seed (the run's seed).
        drop_last: drop the tail that does not divide evenly between processes.
    """

    def __init__(self, size: int, seed: int, drop_last: bool = False) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        super().__init__(
            range(size),
            num_replicas=dist.get_world_size() if distributed else 1,
            rank=dist.get_rank() if distributed else 0,
            shuffle=True,
            seed=seed,
            drop_last=drop_last,
        )
        self.next_epoch = 0  # the epoch the next __iter__ serves
        self.skip = 0  # items of it already consumed (set when resuming)

    def set_epoch(self, epoch: int) -> None:
        """Ignored: Lightning calls it after the epoch's iterator exists; the sampler counts its
        own epochs (one ``__iter__`` per epoch) and restores them from a checkpoint."""

    def _order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(len(self.dataset), generator=generator).tolist()
        if self.drop_last:
            order = order[: self.total_size]
        else:
            order += order[: self.total_size - len(order)]
        return order[self.rank : self.total_size : self.num_replicas]

    def __iter__(self):
        epoch, skip = self.next_epoch, self.skip
        self.next_epoch, self.skip, self.epoch = epoch + 1, 0, epoch
        order = self._order(epoch)
        seeds = np.random.SeedSequence([self.seed, epoch]).generate_state(len(order), np.uint64)
        # the item seed belongs to (epoch, position in this process's order): resumable
        return iter([(i, int(s)) for i, s in zip(order, seeds, strict=True)][skip:])


class ResumableLoader(DataLoader):
    """A training DataLoader over a :class:`ResumableSampler` that Lightning can checkpoint."""

    def __init__(self, dataset, sampler: ResumableSampler, batch_size: int, **kwargs) -> None:
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, **kwargs)
        self.finished_batches = 0  # of the current epoch, by the training loop

    def position(self) -> dict:
        """Where training stands: the epoch and the batches of it finished."""
        epoch, done = self.sampler.epoch, self.finished_batches
        if done >= len(self):  # saved at the end of an epoch: resume with the next one
            epoch, done = epoch + 1, 0
        return {"epoch": epoch, "batches": done}

    def resume_at(self, state: dict) -> None:
        """Make the next iteration continue from :meth:`position`'s ``state``."""
        self.sampler.next_epoch = int(state["epoch"])
        self.sampler.skip = int(state["batches"]) * self.batch_size
        self.finished_batches = int(state["batches"])

    def __iter__(self):
        self.finished_batches = self.sampler.skip // self.batch_size  # 0 unless resuming
        return super().__iter__()


class SpeakerBatchSampler(ResumableSampler):
    """Batches of N speakers x M utterances (GE2E, prototypical and triplet heads), resumable.

    Per epoch, with a generator seeded by (seed, epoch): each speaker with at least M files gets
    its files shuffled ``max_uses`` times over (so no file appears more than ``max_uses`` times in
    an epoch) and cut into chunks of M distinct files; batches take one chunk from each of N
    different speakers (no speaker twice in a batch), always from the speakers with the most
    chunks left, which fills ``floor(chunks / N)`` batches (a speaker's surplus beyond that is
    dropped); the batches are then shuffled and dealt to processes. Items are ``(index,
    item_seed)`` as for :class:`ResumableSampler`; the loader's batch size must be N*M.

    Example:
        >>> sampler = SpeakerBatchSampler([0, 0, 1, 1, 2, 2, 3], speakers=2, utterances=2, seed=0)
        >>> items = [i for i, _ in sampler]
        >>> len(items), len(items) % 4
        (4, 0)
    """

    def __init__(
        self,
        labels,
        speakers: int,
        utterances: int,
        seed: int,
        max_uses: int = 1,
    ) -> None:
        if speakers < 1 or utterances < 1 or max_uses < 1:
            raise ValueError("speakers, utterances and max_uses must be >= 1")
        self.labels = np.asarray(labels)
        self.speakers, self.utterances, self.max_uses = speakers, utterances, max_uses
        super().__init__(len(self.labels), seed, drop_last=True)
        self.by_speaker = [np.flatnonzero(self.labels == s) for s in np.unique(self.labels)]
        self.by_speaker = [f for f in self.by_speaker if len(f) >= utterances]
        chunks = sum(len(f) * max_uses // utterances for f in self.by_speaker)
        if len(self.by_speaker) < speakers:
            raise ValueError(
                f"N x M batches need {speakers} speakers with >= {utterances} utterances; "
                f"the training data has {len(self.by_speaker)}"
            )
        per_rank = chunks // speakers // self.num_replicas
        self.num_samples = per_rank * speakers * utterances
        self.total_size = self.num_samples * self.num_replicas

    @property
    def batch_size(self) -> int:
        return self.speakers * self.utterances

    def __len__(self) -> int:
        return self.num_samples

    def _order(self, epoch: int) -> list[int]:
        rng = np.random.default_rng([self.seed, epoch])
        chunks = []
        for files in self.by_speaker:
            pool = np.concatenate([rng.permutation(files) for _ in range(self.max_uses)])
            usable = len(pool) // self.utterances * self.utterances
            chunks.append(list(pool[:usable].reshape(-1, self.utterances)))
        total = sum(len(c) for c in chunks) // self.speakers  # batches: no speaker beyond it
        chunks = [c[:total] for c in chunks]
        priority = rng.permutation(len(chunks))  # breaks ties between equal counts at random
        batches = []
        for _ in range(total):
            left = np.array([len(c) for c in chunks])
            chosen = np.lexsort((priority, -left))[: self.speakers]
            if left[chosen[-1]] == 0:
                break
            batches.append(np.concatenate([chunks[s].pop() for s in chosen]))
        order = rng.permutation(len(batches))
        per_rank = self.num_samples // self.batch_size
        mine = order[self.rank :: self.num_replicas][:per_rank]
        return [int(i) for b in mine for i in batches[b]]
