"""EER / minDCF against speechbrain's implementations, and the torchmetrics wrappers."""

import numpy as np
import pytest
import torch
from speechbrain.utils.metric_stats import EER, minDCF

from speakerid.metrics import EqualErrorRate, MinDCF, compute_eer, compute_min_dcf


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
