"""The trial set of an evaluation: trials over a table of unique utterances, each embedded once,
and the resolution of a trial list's paths onto a corpus manifest."""

from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from torch import Tensor

from speakerid.data.manifest import Manifest, Utterance
from speakerid.data.trials import Trial, make_trials
from speakerid.errors import ConfigError, ListFileError


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


def generated_trials(name: str, rows: list[Utterance], per_utterance: int, seed: int) -> TrialSet:
    """Balanced trials among ``rows`` (same and different speaker; targets across sessions,
    non-targets mostly of the same language and gender)."""
    pairs = make_trials(
        [u.speaker for u in rows],
        [u.session for u in rows],
        [f"{u.language}/{u.gender}" for u in rows],
        per_utterance,
        seed,
    )
    if not pairs:  # no same-speaker pair, or a single speaker: no metric is defined
        counts = Counter(u.speaker for u in rows)
        several = sum(n >= 2 for n in counts.values())
        raise ConfigError(
            f"the {len(counts)} {name} speaker(s) give no {name} trials: trials need 2 or more "
            f"speakers, and target trials speakers with 2 or more utterances ({several} have); "
            f"choose other data.{name}_speakers or more utterances per speaker"
        )
    return TrialSet.from_pairs(name, rows, pairs)
