"""Cosine scoring against a per-trial loop, and the schedules' shapes."""

import pytest
import torch

from speakerid.scoring import as_norm, cohort_statistics, cosine_scores, subtract_mean
from speakerid.systems.schedules import PerEpoch, WarmupCosine


def test_cosine_scores_match_a_loop() -> None:
    torch.manual_seed(0)
    emb = torch.randn(20, 8)
    enroll, test = torch.randint(0, 20, (100,)), torch.randint(0, 20, (100,))
    expected = torch.stack(
        [
            torch.nn.functional.cosine_similarity(emb[a], emb[b], dim=0)
            for a, b in zip(enroll, test, strict=True)
        ]
    )
    torch.testing.assert_close(cosine_scores(emb, enroll, test, chunk=7), expected)


def test_warmup_cosine_shape() -> None:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    config = WarmupCosine(warmup_fraction=0.1, min_lr_ratio=0.0)(opt, total_steps=100)
    assert config["interval"] == "step"
    factor = config["scheduler"].lr_lambdas[0]
    assert factor(0) == pytest.approx(0.1)
    assert factor(9) == pytest.approx(1.0)
    assert factor(55) == pytest.approx(0.5)
    assert factor(100) == pytest.approx(0.0)


def test_per_epoch_wraps_torch_schedulers() -> None:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    config = PerEpoch(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5))(opt, 10)
    assert config["interval"] == "epoch"
    config["scheduler"].step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)


def test_as_norm_matches_a_hand_computed_loop() -> None:
    torch.manual_seed(1)
    emb, cohort = torch.randn(12, 6), torch.randn(9, 6)
    enroll, test = torch.randint(0, 12, (40,)), torch.randint(0, 12, (40,))
    raw = cosine_scores(emb, enroll, test)
    top_k = 4

    def stats(x: torch.Tensor) -> tuple[float, float]:
        s = sorted(
            (float(torch.nn.functional.cosine_similarity(x, c, dim=0)) for c in cohort),
            reverse=True,
        )[:top_k]
        mean = sum(s) / top_k
        return mean, (sum((v - mean) ** 2 for v in s) / (top_k - 1)) ** 0.5

    expected = []
    for score, a, b in zip(raw.tolist(), enroll.tolist(), test.tolist(), strict=True):
        (ma, sa), (mb, sb) = stats(emb[a]), stats(emb[b])
        expected.append(0.5 * ((score - ma) / sa + (score - mb) / sb))
    got = as_norm(raw, enroll, test, emb, cohort, top_k=top_k)
    torch.testing.assert_close(got, torch.tensor(expected), atol=1e-5, rtol=1e-5)
    # chunking the cohort statistics does not change them
    mean, std = cohort_statistics(emb, cohort, top_k, chunk=5)
    assert (float(mean[0]), float(std[0])) == pytest.approx(stats(emb[0]), abs=1e-6)


def test_as_norm_with_the_whole_cohort_is_s_norm() -> None:
    torch.manual_seed(2)
    emb, cohort = torch.randn(5, 4), torch.randn(7, 4)
    enroll, test = torch.tensor([0, 1]), torch.tensor([2, 3])
    raw = cosine_scores(emb, enroll, test)
    cos = torch.nn.functional.normalize(emb, dim=1) @ torch.nn.functional.normalize(cohort).T
    m, s = cos.mean(dim=1), cos.std(dim=1)
    expected = 0.5 * ((raw - m[enroll]) / s[enroll] + (raw - m[test]) / s[test])
    torch.testing.assert_close(as_norm(raw, enroll, test, emb, cohort, top_k=100), expected)


def test_mean_subtraction_and_bad_cohorts() -> None:
    emb = torch.tensor([[2.0, 1.0], [0.0, 1.0]])
    torch.testing.assert_close(subtract_mean(emb, emb), torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
    with pytest.raises(ValueError, match="cohort"):
        subtract_mean(emb, torch.empty(0, 2))
    with pytest.raises(ValueError, match="top_k"):
        cohort_statistics(emb, emb, top_k=1)
