"""EER and minDCF, vectorized over sorted scores (no loop over thresholds or trials).

Definitions follow speechbrain's ``EER``/``minDCF``: candidate thresholds are the distinct scores
and the midpoints between neighbours; a trial is accepted when its score is above the threshold.
"""

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

ArrayLike = Tensor | np.ndarray


def _split(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(
        scores.detach().cpu() if isinstance(scores, Tensor) else scores, dtype=np.float64
    )
    labels = np.asarray(labels.detach().cpu() if isinstance(labels, Tensor) else labels)
    if scores.ndim != 1 or scores.shape != labels.shape:
        raise ValueError(
            f"scores {scores.shape} and labels {labels.shape} must be equal-length 1-D arrays"
        )
    target, nontarget = np.sort(scores[labels == 1]), np.sort(scores[labels != 1])
    if target.size == 0 or nontarget.size == 0:
        raise ValueError("need at least one target (label 1) and one non-target (label 0) trial")
    return target, nontarget


def _error_rates(
    target: np.ndarray, nontarget: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholds, miss rate P(target <= t) and false-alarm rate P(nontarget > t) at each."""
    distinct = np.unique(np.concatenate([target, nontarget]))
    thresholds = np.sort(np.concatenate([distinct, (distinct[:-1] + distinct[1:]) / 2]))
    p_miss = np.searchsorted(target, thresholds, side="right") / target.size
    p_fa = 1.0 - np.searchsorted(nontarget, thresholds, side="right") / nontarget.size
    return thresholds, p_miss, p_fa


def compute_eer(scores: ArrayLike, labels: ArrayLike) -> tuple[float, float]:
    """Equal error rate and its threshold.

    Args:
        scores: (N,) trial scores, higher = more likely the same speaker.
        labels: (N,) 1 for same-speaker trials, 0 otherwise.

    Returns:
        ``(eer, threshold)``; the EER is the mean of the miss and false-alarm rates at the
        threshold where they are closest, as a fraction (0.05 = 5 %).

    Example:
        >>> compute_eer([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])[0]
        0.0
    """
    thresholds, p_miss, p_fa = _error_rates(*_split(scores, labels))
    best = int(np.argmin(np.abs(p_fa - p_miss)))
    return float((p_fa[best] + p_miss[best]) / 2), float(thresholds[best])


def compute_min_dcf(
    scores: ArrayLike,
    labels: ArrayLike,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
    normalize: bool = True,
) -> tuple[float, float]:
    """Minimum detection cost and its threshold.

    ``C_det = c_miss * P_miss * p_target + c_fa * P_fa * (1 - p_target)``, minimized over
    thresholds. With ``normalize`` (the NIST / VoxSRC convention) it is divided by the cost of
    the best threshold-free decision, ``min(c_miss * p_target, c_fa * (1 - p_target))``;
    ``normalize=False`` gives speechbrain's ``minDCF``.

    Example:
        >>> compute_min_dcf([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])[0]
        0.0
    """
    thresholds, p_miss, p_fa = _error_rates(*_split(scores, labels))
    cost = c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target)
    best = int(np.argmin(cost))
    norm = min(c_miss * p_target, c_fa * (1 - p_target)) if normalize else 1.0
    return float(cost[best] / norm), float(thresholds[best])


def actual_dcf(
    scores: ArrayLike,
    labels: ArrayLike,
    threshold: float,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
    normalize: bool = True,
) -> float:
    """Detection cost of deciding ``score > threshold`` (a threshold fixed beforehand).

    Example:
        >>> actual_dcf([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0], threshold=0.85, p_target=0.5)
        0.5
    """
    target, nontarget = _split(scores, labels)
    p_miss = np.searchsorted(target, threshold, side="right") / target.size
    p_fa = 1.0 - np.searchsorted(nontarget, threshold, side="right") / nontarget.size
    cost = c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target)
    return float(cost / (min(c_miss * p_target, c_fa * (1 - p_target)) if normalize else 1.0))


def threshold_at_far(scores: ArrayLike, labels: ArrayLike, far: float) -> tuple[float, float]:
    """The lowest threshold whose false-accept rate is at most ``far``, and the miss rate there.

    Example:
        >>> threshold_at_far([0.9, 0.8, 0.7, 0.3, 0.1], [1, 1, 0, 0, 0], far=0.0)
        (0.7, 0.0)
    """
    if not 0.0 <= far <= 1.0:
        raise ValueError(f"far must be in [0, 1], got {far}")
    thresholds, p_miss, p_fa = _error_rates(*_split(scores, labels))
    best = int(np.argmax(p_fa <= far))  # p_fa falls as the threshold rises; the top one is 0
    return float(thresholds[best]), float(p_miss[best])


def det_curve(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Miss and false-alarm rates at every candidate threshold, for a DET plot.

    Returns:
        ``(p_miss, p_fa)``, both (T,) with thresholds ascending (p_miss rising, p_fa falling).
    """
    _, p_miss, p_fa = _error_rates(*_split(scores, labels))
    return p_miss, p_fa


class _TrialMetric(Metric):
    """Collects trial scores and labels (gathered across processes) for a whole-set metric."""

    full_state_update = False
    higher_is_better = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def update(self, scores: Tensor, labels: Tensor) -> None:
        self.scores.append(scores.detach().float().flatten())
        self.labels.append(labels.detach().flatten())

    def _collected(self) -> tuple[Tensor, Tensor]:
        return dim_zero_cat(self.scores), dim_zero_cat(self.labels)


class EqualErrorRate(_TrialMetric):
    """torchmetrics wrapper of :func:`compute_eer` (a fraction)."""

    def compute(self) -> Tensor:
        return torch.tensor(compute_eer(*self._collected())[0])


class MinDCF(_TrialMetric):
    """torchmetrics wrapper of :func:`compute_min_dcf` (normalized)."""

    def __init__(self, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0) -> None:
        super().__init__()
        self.p_target, self.c_miss, self.c_fa = p_target, c_miss, c_fa

    def compute(self) -> Tensor:
        scores, labels = self._collected()
        return torch.tensor(
            compute_min_dcf(scores, labels, self.p_target, self.c_miss, self.c_fa)[0]
        )
