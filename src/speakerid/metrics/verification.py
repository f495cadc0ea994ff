"""EER, minDCF, thresholds and DET points from one sort of the scores (:class:`VerificationCurve`).

Definitions follow speechbrain's ``EER``/``minDCF``: candidate thresholds are the distinct scores
and the midpoints between neighbours; a trial is accepted when its score is above the threshold.
"""

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

ArrayLike = Tensor | np.ndarray


def _arrays(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Scores in their own float precision (float32 scores sort faster and are compared as they
    were computed; thresholds are returned as Python floats) and a boolean target mask."""
    scores = np.asarray(scores.detach().cpu() if isinstance(scores, Tensor) else scores)
    if scores.dtype not in (np.float32, np.float64):
        scores = scores.astype(np.float64)
    labels = np.asarray(labels.detach().cpu() if isinstance(labels, Tensor) else labels)
    if scores.ndim != 1 or scores.shape != labels.shape:
        raise ValueError(
            f"scores {scores.shape} and labels {labels.shape} must be equal-length 1-D arrays"
        )
    return scores, labels == 1


def _sorted_with_labels(scores: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores ascending with their target flags, from one sort. float32 scores are mapped to
    order-preserving unsigned keys with the flag in the lowest bit and sorted as uint64 values
    (numpy's vectorized sort: several times faster than an argsort and two gathers)."""
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinity")
    if scores.dtype != np.float32:
        order = np.argsort(scores)
        return scores[order], target[order]
    sign = np.uint32(1 << 31)
    bits = scores.view(np.uint32)
    # negative floats: all bits flipped; positive: the sign bit set (an arithmetic shift of the
    # sign gives the all-ones mask for negatives)
    keys = bits ^ ((scores.view(np.int32) >> 31).view(np.uint32) | sign)
    packed = np.sort((keys.astype(np.uint64) << np.uint64(1)) | target)
    keys = (packed >> np.uint64(1)).astype(np.uint32)
    bits = keys ^ (((keys >> 31) - np.uint32(1)) | sign)
    return bits.view(np.float32), (packed & np.uint64(1)).astype(bool)


class VerificationCurve:
    """Miss and false-alarm rates at every candidate threshold, from **one** sort of the scores:
    EER, minDCF at any prior, the threshold at a false-accept rate and the DET points are then
    queries on the same arrays (each O(T), no further sort).

    Candidate thresholds are the distinct scores and the midpoints between neighbours (as in
    speechbrain's ``EER``/``minDCF``); a trial is accepted when its score is above the threshold.
    A midpoint's rates equal those of the distinct score below it, so only the distinct scores
    are kept: every minimum and threshold is the same as over both.

    Args:
        scores: (N,) trial scores, higher = more likely the same speaker.
        labels: (N,) 1 for same-speaker trials, 0 otherwise.

    Example:
        >>> curve = VerificationCurve([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])
        >>> curve.eer()[0], curve.min_dcf(0.01)[0]
        (0.0, 0.0)
    """

    def __init__(self, scores: ArrayLike, labels: ArrayLike) -> None:
        scores, target = _arrays(scores, labels)
        self.num_target = int(target.sum())
        self.num_nontarget = len(target) - self.num_target
        if self.num_target == 0 or self.num_nontarget == 0:
            raise ValueError(
                "need at least one target (label 1) and one non-target (label 0) trial"
            )
        ordered, target = _sorted_with_labels(scores, target)  # the one sort
        last = np.empty(len(ordered), dtype=bool)  # the last trial of each distinct score
        np.not_equal(ordered[1:], ordered[:-1], out=last[:-1])
        last[-1] = True
        # At a distinct score d, "accept above d" misses the targets <= d. A midpoint between two
        # distinct scores counts what its lower one counts, so it never changes a minimum (the
        # lower score comes first) and the rates are only kept at the distinct scores.
        self.thresholds = ordered[last]
        targets_at_or_below = np.cumsum(
            target, dtype=np.int64 if len(target) >= 2**31 else np.int32
        )[last]
        nontargets_at_or_below = np.flatnonzero(last) + 1 - targets_at_or_below
        self.p_miss = targets_at_or_below / self.num_target
        self.p_fa = 1.0 - nontargets_at_or_below / self.num_nontarget

    def eer(self) -> tuple[float, float]:
        """``(eer, threshold)``: the mean of the miss and false-alarm rates where they are
        closest, as a fraction (0.05 = 5 %)."""
        best = int(np.argmin(np.abs(self.p_fa - self.p_miss)))
        return float((self.p_fa[best] + self.p_miss[best]) / 2), float(self.thresholds[best])

    def min_dcf(
        self, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0, normalize: bool = True
    ) -> tuple[float, float]:
        """``(min C_det, threshold)``; normalized by ``min(c_miss p_target, c_fa (1 - p_target))``
        unless ``normalize=False`` (speechbrain's un-normalized ``minDCF``)."""
        cost = c_miss * self.p_miss * p_target + c_fa * self.p_fa * (1 - p_target)
        best = int(np.argmin(cost))
        norm = min(c_miss * p_target, c_fa * (1 - p_target)) if normalize else 1.0
        return float(cost[best] / norm), float(self.thresholds[best])

    def at_far(self, far: float) -> tuple[float, float]:
        """The lowest threshold whose false-accept rate is at most ``far``, and its miss rate."""
        if not 0.0 <= far <= 1.0:
            raise ValueError(f"far must be in [0, 1], got {far}")
        best = int(np.argmax(self.p_fa <= far))  # p_fa falls as the threshold rises
        return float(self.thresholds[best]), float(self.p_miss[best])

    def det(self) -> tuple[np.ndarray, np.ndarray]:
        """``(p_miss, p_fa)`` at every distinct score, ascending."""
        return self.p_miss, self.p_fa


def compute_eer(scores: ArrayLike, labels: ArrayLike) -> tuple[float, float]:
    """Equal error rate and its threshold (:meth:`VerificationCurve.eer`).

    Example:
        >>> compute_eer([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])[0]
        0.0
    """
    return VerificationCurve(scores, labels).eer()


def compute_min_dcf(
    scores: ArrayLike,
    labels: ArrayLike,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
    normalize: bool = True,
) -> tuple[float, float]:
    """Minimum detection cost and its threshold (:meth:`VerificationCurve.min_dcf`):
    ``C_det = c_miss * P_miss * p_target + c_fa * P_fa * (1 - p_target)``, minimized over
    thresholds; normalized as in NIST SRE / VoxSRC unless ``normalize=False``.

    Example:
        >>> compute_min_dcf([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])[0]
        0.0
    """
    return VerificationCurve(scores, labels).min_dcf(p_target, c_miss, c_fa, normalize)


def actual_dcf(
    scores: ArrayLike,
    labels: ArrayLike,
    threshold: float,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
    normalize: bool = True,
) -> float:
    """Detection cost of deciding ``score > threshold`` (a threshold fixed beforehand; no sort).

    Example:
        >>> actual_dcf([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0], threshold=0.85, p_target=0.5)
        0.5
    """
    scores, target = _arrays(scores, labels)
    if target.all() or not target.any():
        raise ValueError("need at least one target (label 1) and one non-target (label 0) trial")
    accepted = scores > threshold
    p_miss = float((~accepted & target).sum() / target.sum())
    p_fa = float((accepted & ~target).sum() / (~target).sum())
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
    return VerificationCurve(scores, labels).at_far(far)


def det_curve(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Miss and false-alarm rates at every distinct score, for a DET plot.

    Returns:
        ``(p_miss, p_fa)``, both (T,) with thresholds ascending (p_miss rising, p_fa falling).
    """
    return VerificationCurve(scores, labels).det()


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
