"""Loss heads that pull embeddings towards per-speaker targets (embedding enhancement, SEEDS §2).

They honour the loss-head contract ``(embeddings (B,D), labels) -> HeadOutput``; ``labels`` is
(B,) speaker classes, or (B,3) columns ``speaker, session, other speaker`` as the embedding data
module gives them (:data:`SPEAKER`, :data:`SESSION`, :data:`OTHER`). The targets — one (D,) vector
per speaker class — are data, not parameters: the system hands them over with
:meth:`TargetHead.set_targets` before training (they are not saved in checkpoints).

Combinations (MSE + cosine, MSE + softmax, DA + MSE, ...) are :class:`WeightedSum` of heads.
"""

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.nn.functional import cosine_similarity, normalize

from speakerid.contracts import OTHER, SESSION, SPEAKER, HeadOutput, NeedsTargets, label_column


class TargetHead(nn.Module):
    """Base of the heads that compare embeddings with their speaker's target."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("targets", torch.empty(0), persistent=False)

    def set_targets(self, targets: Tensor) -> None:
        """(S,D): the target of each speaker class."""
        self.targets = targets.detach().to(self.targets.device, torch.float32)

    def _target(self, labels: Tensor, column: int = SPEAKER) -> Tensor:
        if self.targets.numel() == 0:
            raise RuntimeError(f"{type(self).__name__}: set_targets() was not called")
        return self.targets[label_column(labels, column)]


class Mse(TargetHead):
    """Mean squared error to the speaker target."""

    def forward(self, embeddings: Tensor, labels: Tensor) -> HeadOutput:
        return HeadOutput(nn.functional.mse_loss(embeddings.float(), self._target(labels)))


class Mae(TargetHead):
    """Mean absolute error to the speaker target."""

    def forward(self, embeddings: Tensor, labels: Tensor) -> HeadOutput:
        return HeadOutput(nn.functional.l1_loss(embeddings.float(), self._target(labels)))


class CosineTarget(TargetHead):
    """``1 - mean cos(x, m)``: the cosine distance to the speaker target."""

    def forward(self, embeddings: Tensor, labels: Tensor) -> HeadOutput:
        cos = cosine_similarity(embeddings.float(), self._target(labels), dim=1)
        return HeadOutput(1.0 - cos.mean())


class TripletCosine(TargetHead):
    """``1 - cos(x, m_same) + cos(x, m_other)``, averaged; with ``margin``, the hinge
    ``max(0, cos(x, m_other) - cos(x, m_same) + margin)`` instead.

    The other speaker is the labels' third column (from a triplet list, or drawn by the data
    module); with (B,) labels it is drawn here, uniformly among the other classes.
    """

    def __init__(self, margin: float | None = None) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, embeddings: Tensor, labels: Tensor) -> HeadOutput:
        x = embeddings.float()
        same = cosine_similarity(x, self._target(labels), dim=1)
        if labels.ndim == 2:
            other_targets = self._target(labels, OTHER)
        else:
            shift = torch.randint(1, len(self.targets), labels.shape, device=labels.device)
            other_targets = self.targets[(labels + shift) % len(self.targets)]
        other = cosine_similarity(x, other_targets, dim=1)
        if self.margin is None:
            return HeadOutput((1.0 - same + other).mean())
        return HeadOutput(torch.relu(other - same + self.margin).mean())


def mmd2_rbf(x: Tensor, y: Tensor, sigma: float) -> Tensor:
    """Squared maximum mean discrepancy between two samples of scalars, RBF kernel (biased
    V-statistic: ``mean k(x,x') + mean k(y,y') - 2 mean k(x,y)``, never negative)."""

    def kernel(a: Tensor, b: Tensor) -> Tensor:
        return torch.exp(-((a[:, None] - b[None, :]) ** 2) / (2 * sigma**2)).mean()

    return kernel(x, x) + kernel(y, y) - 2 * kernel(x, y)


class DomainAdaptation(nn.Module):
    """MMD² between within-speaker distances of same-session and of cross-session pairs.

    Every pair of rows with the same speaker in the batch is a pair; its distance is the Euclidean
    distance of the L2-normalized outputs. Making the two distance distributions alike makes the
    embedding insensitive to the session (channel). Batches should hold one speaker's utterances
    from several sessions (``batching: per_speaker``); a batch without both kinds of pairs gives 0.
    Needs (B,3) labels (speaker, session, other). Combine with a target term
    (``domain_adaptation`` = this + cosine, ``domain_adaptation_mse`` = this + MSE).
    """

    def __init__(self, sigma: float = 1.0) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, embeddings: Tensor, labels: Tensor) -> HeadOutput:
        speaker, session = label_column(labels, SPEAKER), label_column(labels, SESSION)
        x = normalize(embeddings.float(), dim=1)
        first, second = torch.triu_indices(len(x), len(x), offset=1, device=x.device)
        keep = speaker[first] == speaker[second]
        first, second = first[keep], second[keep]
        distance = (x[first] - x[second]).norm(dim=1)
        same = session[first] == session[second]
        if same.all() or not same.any():
            return HeadOutput(x.sum() * 0.0)  # no contrast in this batch; keeps the graph
        return HeadOutput(mmd2_rbf(distance[same], distance[~same], self.sigma))


class WeightedSum(nn.Module):
    """``Σ weight_i * head_i(embeddings, labels).loss``; logits from the first head that has them.

    Example (MSE + cosine):
        >>> head = WeightedSum({"mse": Mse(), "cosine": CosineTarget()}, {"cosine": 0.5})
        >>> head.set_targets(torch.eye(3))
        >>> float(head(torch.eye(3), torch.arange(3)).loss)
        0.0
    """

    def __init__(self, heads: Mapping[str, nn.Module], weights: Mapping[str, float] | None = None):
        super().__init__()
        self.heads = nn.ModuleDict(dict(heads))
        weights = dict(weights or {})
        unknown = set(weights) - set(self.heads)
        if unknown:
            raise ValueError(f"weights for unknown heads {sorted(unknown)}")
        self.weights = {name: float(weights.get(name, 1.0)) for name in self.heads}

    def set_targets(self, targets: Tensor) -> None:
        for head in self.heads.values():
            if isinstance(head, NeedsTargets):
                head.set_targets(targets)

    def forward(self, embeddings: Tensor, labels: Tensor) -> HeadOutput:
        total, logits = embeddings.new_zeros((), dtype=torch.float32), None
        for name, head in self.heads.items():
            out = head(embeddings, labels)
            total = total + self.weights[name] * out.loss
            logits = out.logits if logits is None else logits
        return HeadOutput(total, logits)
