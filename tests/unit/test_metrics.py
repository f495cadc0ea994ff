"""EER / minDCF against speechbrain's implementations, and the torchmetrics wrappers."""

import numpy as np
import pytest
import torch
from speechbrain.utils.metric_stats import EER, minDCF

from speakerid.metrics import (
    EqualErrorRate,
    MinDCF,
    VerificationCurve,
    actual_dcf,
    compute_eer,
    compute_min_dcf,
    det_curve,
    threshold_at_far,
)


def _trials(seed: int, n: int = 400, ties: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = rng.normal(size=n) + 1.5 * labels
    if ties:
        scores = np.round(scores, 1)
    return torch.tensor(scores, dtype=torch.float32), torch.tensor(labels)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
def test_eer_matches_speechbrain(seed: int, ties: bool) -> None:
    scores, labels = _trials(seed, ties=ties)
    ours, threshold = compute_eer(scores, labels)
    ref, ref_threshold = EER(scores[labels == 1], scores[labels == 0])
    assert ours == pytest.approx(ref, abs=1e-6)
    assert threshold == pytest.approx(ref_threshold, abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("p_target", [0.01, 0.05])
def test_min_dcf_matches_speechbrain(seed: int, p_target: float) -> None:
    scores, labels = _trials(seed)
    ref, _ = minDCF(scores[labels == 1], scores[labels == 0], p_target=p_target)
    raw, _ = compute_min_dcf(scores, labels, p_target=p_target, normalize=False)
    assert raw == pytest.approx(float(ref), abs=1e-6)
    normalized, _ = compute_min_dcf(scores, labels, p_target=p_target)
    assert normalized == pytest.approx(float(ref) / min(p_target, 1 - p_target), abs=1e-5)


def test_perfect_and_inverted_systems() -> None:
    assert compute_eer([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0])[0] == 0.0
    assert compute_eer([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0])[0] == 1.0
    assert compute_min_dcf([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0])[0] == 0.0


@pytest.mark.parametrize(
    ("scores", "labels"),
    [([0.1, 0.2], [1, 1]), ([0.1, 0.2], [0, 0]), ([0.1, 0.2, 0.3], [1, 0]), ([[0.1]], [[1]])],
)
def test_bad_trial_sets_are_rejected(scores: list, labels: list) -> None:
    with pytest.raises(ValueError):
        compute_eer(scores, labels)


def test_torchmetrics_wrappers_accumulate_batches() -> None:
    scores, labels = _trials(0)
    eer, dcf = EqualErrorRate(), MinDCF(p_target=0.01)
    for chunk in range(4):
        part = slice(chunk * 100, (chunk + 1) * 100)
        eer.update(scores[part], labels[part])
        dcf.update(scores[part], labels[part])
    assert eer.compute().item() == pytest.approx(compute_eer(scores, labels)[0])
    assert dcf.compute().item() == pytest.approx(compute_min_dcf(scores, labels)[0])


@pytest.mark.parametrize("seed", range(3))
def test_eer_matches_a_roc_curve_from_scikit_learn(seed: int) -> None:
    from sklearn.metrics import roc_curve

    scores, labels = _trials(seed, n=2000)
    fpr, tpr, _ = roc_curve(labels.numpy(), scores.numpy())
    fnr = 1 - tpr
    best = np.argmin(np.abs(fnr - fpr))
    roc_eer = (fpr[best] + fnr[best]) / 2
    # the ROC's points are the scores themselves; ours adds midpoints: equal to one trial's step
    assert compute_eer(scores, labels)[0] == pytest.approx(roc_eer, abs=1.5 / 1000)


def test_actual_dcf_at_a_fixed_threshold_by_hand() -> None:
    scores, labels = _trials(1)
    threshold = 0.7
    accept = scores > threshold
    p_miss = float((~accept[labels == 1]).float().mean())
    p_fa = float(accept[labels == 0].float().mean())
    expected = (0.05 * p_miss + 0.95 * p_fa) / 0.05
    assert actual_dcf(scores, labels, threshold, p_target=0.05) == pytest.approx(expected)
    # the minimum over thresholds can only be lower
    assert compute_min_dcf(scores, labels, 0.05)[0] <= actual_dcf(scores, labels, threshold, 0.05)


@pytest.mark.parametrize("far", [0.0, 0.01, 0.1, 0.5])
def test_threshold_at_far_is_the_lowest_meeting_the_target(far: float) -> None:
    scores, labels = _trials(2)
    threshold, miss = threshold_at_far(scores, labels, far)
    nontarget, target = scores[labels == 0], scores[labels == 1]
    assert float((nontarget > threshold).float().mean()) <= far
    assert miss == pytest.approx(float((target <= threshold).float().mean()))
    lower = scores[scores < threshold].max()  # any lower candidate breaks the target
    assert float((nontarget > lower).float().mean()) > far


def test_det_curve_is_monotonic() -> None:
    p_miss, p_fa = det_curve(*_trials(3))
    assert np.all(np.diff(p_miss) >= 0) and np.all(np.diff(p_fa) <= 0)
    assert p_fa[0] > 0.9 and p_miss[-1] == 1.0


def _brute_force(scores: np.ndarray, labels: np.ndarray, p_target: float) -> tuple:
    """EER and minDCF by the definition: every distinct score and midpoint as a threshold,
    rates counted trial by trial (O(T * N))."""
    distinct = np.unique(scores)
    candidates = np.sort(np.concatenate([distinct, (distinct[:-1] + distinct[1:]) / 2]))
    target, nontarget = scores[labels == 1], scores[labels == 0]
    p_miss = np.array([(target <= t).mean() for t in candidates])
    p_fa = np.array([(nontarget > t).mean() for t in candidates])
    best = np.argmin(np.abs(p_fa - p_miss))
    cost = p_miss * p_target + p_fa * (1 - p_target)
    return (
        (p_fa[best] + p_miss[best]) / 2,
        candidates[best],
        cost.min() / min(p_target, 1 - p_target),
    )


@pytest.mark.parametrize("seed", range(5))
def test_one_curve_answers_every_query_like_the_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(size=300), 1)  # many ties, across classes too
    labels = (rng.random(300) < 0.3).astype(int)
    curve = VerificationCurve(scores, labels)
    eer, threshold, min_dcf = _brute_force(scores, labels, 0.05)
    assert curve.eer() == pytest.approx((eer, threshold))
    assert curve.min_dcf(0.05)[0] == pytest.approx(min_dcf)
    assert curve.at_far(0.1) == threshold_at_far(scores, labels, 0.1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_curve_sorts_once(dtype, monkeypatch) -> None:
    calls = []
    for name in ("sort", "argsort"):
        original = getattr(np, name)
        monkeypatch.setattr(np, name, lambda *a, _f=original, **k: calls.append(1) or _f(*a, **k))
    monkeypatch.setattr(np, "unique", lambda *a, **k: pytest.fail("a second sort"))
    scores = np.random.default_rng(0).normal(size=50).astype(dtype)
    curve = VerificationCurve(scores, np.arange(50) % 2)
    curve.eer(), curve.min_dcf(0.01), curve.min_dcf(0.05), curve.at_far(0.01), curve.det()
    assert calls == [1]


def test_float32_scores_sort_with_their_labels_exactly() -> None:
    """The packed-key sort of float32 scores: signs, zeros of both signs, ties across classes."""
    rng = np.random.default_rng(1)
    scores = np.concatenate([rng.normal(size=500), [0.0, -0.0, 1e-30, -1e-30, 3.5, 3.5]])
    scores = np.round(scores, 2).astype(np.float32)
    labels = rng.integers(0, 2, len(scores))
    single, double = (
        VerificationCurve(scores, labels),
        VerificationCurve(scores.astype(np.float64), labels),
    )
    np.testing.assert_array_equal(single.thresholds, double.thresholds.astype(np.float32))
    np.testing.assert_array_equal(single.p_miss, double.p_miss)
    np.testing.assert_array_equal(single.p_fa, double.p_fa)
    with pytest.raises(ValueError, match="NaN"):
        VerificationCurve(np.array([0.1, np.nan], dtype=np.float32), [1, 0])
