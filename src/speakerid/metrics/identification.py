"""Closed- and open-set identification: top-k accuracy, KNN, nearest centroid, rejection.

Scores are cosine similarities of L2-normalized embeddings; every function takes plain tensors
and is vectorized over the test utterances.
"""

import torch
from torch import Tensor
from torch.nn.functional import normalize

UNKNOWN = -1  # the label of a rejected utterance


def topk_accuracy(scores: Tensor, labels: Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, float]:
    """Fraction of rows whose true class is among the ``k`` highest scores, for each k.

    Args:
        scores: (N,C) class scores (logits, or similarities to C enrolled speakers).
        labels: (N,) true class of each row, in [0, C).

    Example:
        >>> topk_accuracy(torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5]]), torch.tensor([0, 1]))
        {1: 0.5, 5: 1.0}
    """
    if scores.ndim != 2 or len(scores) != len(labels) or len(labels) == 0:
        raise ValueError(f"scores {tuple(scores.shape)} must be (N,C) with N = len(labels) > 0")
    ranked = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices  # (N,k)
    hits = ranked == labels[:, None]
    return {k: float(hits[:, :k].any(dim=1).float().mean()) for k in ks}


def centroids(embeddings: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """(C,D) L2-normalized mean of each class's L2-normalized embeddings (its speaker model)."""
    normed = normalize(embeddings.float(), dim=1)
    sums = torch.zeros(num_classes, normed.shape[1]).index_add_(0, labels, normed)
    if (torch.bincount(labels, minlength=num_classes) == 0).any():
        raise ValueError("every class needs at least one enrolment embedding")
    return normalize(sums, dim=1)


def knn_scores(
    enrol: Tensor,
    enrol_labels: Tensor,
    test: Tensor,
    num_classes: int,
    k: int = 5,
    weighting: str = "majority",
    chunk: int = 4096,
) -> Tensor:
    """Class votes of each test embedding's ``k`` nearest enrolment embeddings (cosine distance).

    Args:
        weighting: ``majority`` (one vote each) or ``distance`` (votes weighted by 1/d,
            d = 1 - cosine). Ties in majority voting go to the class of the nearer neighbour.

    Returns:
        (N,C) votes; ``argmax`` is the KNN decision.
    """
    if weighting not in ("majority", "distance"):
        raise ValueError(f"weighting must be 'majority' or 'distance', got {weighting!r}")
    enrol = normalize(enrol.float(), dim=1)
    votes = torch.zeros(len(test), num_classes)
    for start in range(0, len(test), chunk):  # bounds memory to chunk x E similarities
        similarity = normalize(test[start : start + chunk].float(), dim=1) @ enrol.T
        top = similarity.topk(min(k, similarity.shape[1]), dim=1)
        if weighting == "distance":
            weights = 1.0 / (1.0 - top.values).clamp_min(1e-6)
        else:  # 1 per vote, plus a tie-breaker far below 1 favouring nearer neighbours
            weights = 1.0 + 1e-3 * top.values
        votes[start : start + chunk].scatter_add_(1, enrol_labels[top.indices], weights)
    return votes


def reject_unknown(scores: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """Open-set decision: the best class, or :data:`UNKNOWN` where its score is not above
    ``threshold``.

    Returns:
        ``(predictions, best_scores)``, each (N,).

    Example:
        >>> reject_unknown(torch.tensor([[0.9, 0.1], [0.2, 0.3]]), threshold=0.5)[0]
        tensor([ 0, -1])
    """
    best, predictions = scores.max(dim=1)
    return torch.where(best > threshold, predictions, UNKNOWN), best


def open_set_rates(predictions: Tensor, labels: Tensor) -> dict[str, float]:
    """Open-set identification rates; ``labels`` is :data:`UNKNOWN` for unenrolled speakers.

    Returns:
        ``detection_identification_rate``: known utterances accepted with the right speaker;
        ``false_alarm_rate``: unknown utterances accepted as someone; ``accuracy``: all
        utterances labelled right, "unknown" counting as a label.
    """
    known = labels != UNKNOWN
    rates = {"accuracy": float((predictions == labels).float().mean())}
    if known.any():
        rates["detection_identification_rate"] = float(
            (predictions[known] == labels[known]).float().mean()
        )
    if (~known).any():
        rates["false_alarm_rate"] = float((predictions[~known] != UNKNOWN).float().mean())
    return rates
