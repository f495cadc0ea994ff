"""Cosine scoring against a per-trial loop, and the schedules' shapes."""

import pytest
import torch

from speakerid.scoring import cosine_scores
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
