"""Operating thresholds with their uncertainty: the threshold at the EER and at target
false-accept rates, bootstrap intervals that resample speakers (not trials), and the rule that
says when too few trials stand behind a target.

Trials of one speaker are not independent (they share its voice, its sessions, its microphone),
so resampling trials one by one makes intervals that are too narrow. Each trial belongs to the
speaker of its enrolment side; a bootstrap resample draws as many speakers as there are, with
replacement, and takes every trial of each drawn speaker (twice if drawn twice).
"""

from collections.abc import Sequence

import numpy as np

from speakerid.metrics.verification import ArrayLike, VerificationCurve, _arrays


def far_point(far: float) -> str:
    """The name of the operating point at a false-accept rate: ``far@0.001``."""
    return f"far@{far:g}"


def operating_thresholds(
    scores: ArrayLike, labels: ArrayLike, far_targets: Sequence[float]
) -> dict[str, float]:
    """``{"eer": threshold, "far@<rate>": threshold, ...}``: the EER threshold, and the lowest
    threshold whose false-accept rate is at most each target (:class:`VerificationCurve`).

    Example:
        >>> operating_thresholds([0.9, 0.8, 0.7, 0.3, 0.1], [1, 1, 0, 0, 0], [0.0])
        {'eer': 0.7, 'far@0': 0.7}
    """
    curve = VerificationCurve(scores, labels)
    points = {"eer": curve.eer()[1]}
    points.update({far_point(far): curve.at_far(far)[0] for far in far_targets})
    return points


def enough_trials(rate: float, trials: int, min_errors: int) -> bool:
    """The rule: an error rate measured on ``trials`` trials stands on about ``rate * trials``
    errors, and a threshold set there is trusted when that is at least ``min_errors``
    (Doddington's rule of 30 for 30: then the true rate lies within about ±30 % of the measured
    one with 90 % confidence). A target false-accept rate of 0.1 % thus needs 30,000
    non-target trials; 2,000 give it 2 errors.

    Example:
        >>> enough_trials(0.001, 2000, 30), enough_trials(0.01, 3000, 30)
        (False, True)
    """
    return rate * trials >= min_errors


def speaker_bootstrap(
    scores: ArrayLike,
    labels: ArrayLike,
    speakers: ArrayLike,
    far_targets: Sequence[float],
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of :func:`operating_thresholds` over resampled speakers.

    Resample ``b`` draws ``numpy.random.default_rng(seed).integers(S, size=S)`` (the ``b``-th
    draw of one generator) from the ``S`` distinct ``speakers`` in sorted order, and scores the
    trials of the drawn speakers, each as often as drawn; a resample without a target or without
    a non-target trial is left out. The interval is numpy's (linear) percentiles at
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``.

    Args:
        scores: (N,) trial scores.
        labels: (N,) 1 for same-speaker trials.
        speakers: (N,) the speaker each trial belongs to (its enrolment side's).

    Returns:
        ``{"eer": (low, high), "far@<rate>": (low, high), ...}``; empty when no resample holds
        both kinds of trial.
    """
    scores, target = _arrays(scores, labels)
    names, groups = np.unique(np.asarray(speakers), return_inverse=True)
    members = [np.flatnonzero(groups == g) for g in range(len(names))]
    rng = np.random.default_rng(seed)
    drawn: dict[str, list[float]] = {}
    for _ in range(resamples):
        draw = rng.integers(len(names), size=len(names))
        rows = np.concatenate([members[g] for g in draw])
        if target[rows].all() or not target[rows].any():
            continue
        for name, value in operating_thresholds(scores[rows], target[rows], far_targets).items():
            drawn.setdefault(name, []).append(value)
    tail = 100 * (1 - confidence) / 2
    return {
        name: tuple(float(v) for v in np.percentile(values, [tail, 100 - tail]))
        for name, values in drawn.items()
    }
