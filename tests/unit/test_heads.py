"""The five systems' loss heads against their formulas (plain loops) and speechbrain; margin
warm-up; the contrastive-center loss's own optimizer; the multi-task head."""

import math

import pytest
import torch
from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper

from speakerid.losses import (
    AamSoftmax,
    AmSoftmax,
    AngularPrototypical,
    ContrastiveCenter,
    Ge2e,
    MarginWarmup,
    MultiTask,
    Triplet,
)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


def _ge2e_loop(e: torch.Tensor, w: float, b: float, variant: str) -> float:
    """Wan et al. 2018, eq. 5-10, utterance by utterance; e is (N,M,D)."""
    n, m, _ = e.shape
    total = 0.0
    for j in range(n):
        for i in range(m):
            s = []
            for k in range(n):
                own = (e[j].sum(0) - e[j, i]) / (m - 1)  # eq. 8, exclusive
                centroid = own if k == j else e[k].mean(0)
                s.append(w * _cos(e[j, i], centroid) + b)
            if variant == "softmax":  # eq. 6
                total += -s[j] + math.log(sum(math.exp(x) for x in s))
            else:  # eq. 7
                sig = [1 / (1 + math.exp(-x)) for x in s]
                total += 1 - sig[j] + max(sig[k] for k in range(n) if k != j)
    return total / (n * m)


@pytest.mark.parametrize("variant", ["softmax", "contrast"])
def test_ge2e_matches_the_papers_formulas(variant: str) -> None:
    torch.manual_seed(0)
    n, m, d = 4, 5, 8
    e = torch.randn(n, m, d, dtype=torch.float64)
    labels = torch.arange(n).repeat_interleave(m)
    shuffle = torch.randperm(n * m)  # the head groups by label, in any order
    head = Ge2e(variant=variant, init_w=7.0, init_b=-3.0)
    loss = head(e.reshape(n * m, d)[shuffle].float(), labels[shuffle]).loss
    assert float(loss) == pytest.approx(_ge2e_loop(e, 7.0, -3.0, variant), rel=1e-4)


def test_ge2e_keeps_w_positive_and_needs_n_by_m_batches() -> None:
    head = Ge2e(init_w=-1.0)
    s = head.scores(torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2]))
    assert torch.allclose(s, torch.full_like(s, -5.0), atol=1e-5)  # w clamped to ~0: S = b
    with pytest.raises(ValueError, match="every speaker of a batch M >= 2 times"):
        head(torch.randn(5, 4), torch.tensor([0, 0, 1, 1, 1]))
    for kind in ("euclidean", "manhattan", "dot"):
        out = Ge2e(similarity=kind)(torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2]))
        assert torch.isfinite(out.loss)


def test_angular_prototypical_matches_its_formula() -> None:
    torch.manual_seed(1)
    e = torch.randn(3, 4, 8)
    head = AngularPrototypical(init_w=10.0, init_b=-5.0)
    loss = head(e.reshape(12, 8), torch.arange(3).repeat_interleave(4)).loss
    expected = 0.0
    for j in range(3):
        s = [10 * _cos(e[j, -1], e[k, :-1].mean(0)) - 5 for k in range(3)]
        expected += -s[j] + math.log(sum(math.exp(x) for x in s))
    assert float(loss) == pytest.approx(expected / 3, rel=1e-4)


def test_aam_softmax_equals_speechbrains_loss() -> None:
    torch.manual_seed(2)
    head = AamSoftmax(embed_dim=16, num_speakers=6, margin=0.2, scale=30.0)
    x, y = torch.randn(10, 16), torch.randint(0, 6, (10,))
    cosine = torch.nn.functional.normalize(x) @ torch.nn.functional.normalize(head.weight).T
    reference = LogSoftmaxWrapper(AdditiveAngularMargin(margin=0.2, scale=30.0))
    expected = reference(cosine.unsqueeze(1), y.unsqueeze(1))
    assert float(head(x, y).loss) == pytest.approx(float(expected), rel=1e-5)
    # and by hand where the margin applies directly: s*cos(theta + m) for the true class
    theta = torch.acos(cosine.clamp(-1, 1))
    logits = 30 * torch.where(
        torch.nn.functional.one_hot(y, 6).bool(), torch.cos(theta + 0.2), cosine
    )
    if (theta[torch.arange(10), y] + 0.2 < math.pi).all():
        manual = torch.nn.functional.cross_entropy(logits, y)
        assert float(head(x, y).loss) == pytest.approx(float(manual), rel=1e-4)


def test_am_softmax_subtracts_the_margin_from_the_true_cosine() -> None:
    torch.manual_seed(3)
    head = AmSoftmax(embed_dim=8, num_speakers=4, margin=0.3, scale=20.0)
    x, y = torch.randn(6, 8), torch.randint(0, 4, (6,))
    cosine = torch.nn.functional.normalize(x) @ torch.nn.functional.normalize(head.weight).T
    logits = 20 * (cosine - 0.3 * torch.nn.functional.one_hot(y, 4))
    expected = torch.nn.functional.cross_entropy(logits, y)
    assert float(head(x, y).loss) == pytest.approx(float(expected), rel=1e-5)


def test_triplet_hard_mining_matches_a_loop() -> None:
    torch.manual_seed(4)
    x, y = torch.randn(8, 6), torch.tensor([0, 0, 0, 1, 1, 2, 2, 3])
    loss = Triplet(margin=0.2, mining="hard")(x, y).loss
    terms = []
    for a in range(8):
        pos = [_cos(x[a], x[p]) for p in range(8) if p != a and y[p] == y[a]]
        neg = [_cos(x[a], x[n]) for n in range(8) if y[n] != y[a]]
        if pos:  # speaker 3 has no positive
            terms.append(max(max(neg) - min(pos) + 0.2, 0.0))
    assert float(loss) == pytest.approx(sum(terms) / len(terms), rel=1e-5)


def test_triplet_random_mining_picks_valid_pairs_and_the_bank_adds_candidates() -> None:
    x, y = torch.randn(3, 4), torch.tensor([0, 0, 1])  # one positive and one negative each
    expected = sum(max(_cos(x[a], x[2]) - _cos(x[a], x[1 - a]) + 0.1, 0.0) for a in (0, 1)) / 2
    assert float(Triplet(margin=0.1)(x, y).loss) == pytest.approx(expected, rel=1e-5)
    head = Triplet(margin=0.1, mining="hard", bank_size=4)
    head(torch.randn(4, 4), torch.tensor([5, 5, 6, 6]))
    assert head.bank.shape == (4, 4) and head.bank_labels.tolist() == [5, 5, 6, 6]
    lonely = torch.tensor([5, 7])  # no positive in the batch; the bank holds speaker 5
    assert torch.isfinite(head(torch.randn(2, 4), lonely).loss)
    with pytest.raises(ValueError, match="no anchor has both"):
        Triplet()(torch.randn(2, 4), torch.tensor([0, 1]))


def test_contrastive_center_matches_its_formula_and_steps_its_own_centers() -> None:
    torch.manual_seed(5)
    head = ContrastiveCenter(embed_dim=4, num_speakers=3, lambda_=0.5, delta=1.0)
    h, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    term = 0.0
    for i in range(5):
        own = float((h[i] - head.centers[y[i]]).square().sum())
        others = sum(float((h[i] - head.centers[j]).square().sum()) for j in range(3) if j != y[i])
        term += 0.5 * own / (others + 1.0)
    ce = torch.nn.functional.cross_entropy(head.classifier(h), y)
    assert float(head(h, y).loss) == pytest.approx(float(ce) + 0.5 * term / 5, rel=1e-5)
    before = head.centers.detach().clone()
    head(h, y).loss.backward()
    head.step_own()
    assert not torch.equal(before, head.centers) and head.centers.grad is None
    state = head.state_dict()  # the centers' optimizer state travels with the weights
    fresh = ContrastiveCenter(embed_dim=4, num_speakers=3)
    fresh.load_state_dict(state)
    fresh(h, y).loss.backward()
    fresh.step_own()
    assert fresh.center_optimizer.state_dict()["state"][0]["step"] == 2


def test_the_system_leaves_the_centers_to_their_own_optimizer() -> None:
    from speakerid.backbones import XVector
    from speakerid.features import KaldiFbank
    from speakerid.systems import EncoderModule

    head = ContrastiveCenter(embed_dim=8, num_speakers=3)
    system = EncoderModule(
        KaldiFbank(num_mels=24), XVector(24, 8, 16, 8), head, lambda p: torch.optim.SGD(p, 0.1)
    )
    optimized = {id(p) for p in system.optimized_parameters()}
    assert id(head.centers) not in optimized and id(head.classifier.weight) in optimized


def test_margin_warmup_is_a_function_of_the_step() -> None:
    head = AamSoftmax(embed_dim=4, num_speakers=2, margin=0.2)
    warmup = MarginWarmup(steps=100, start=0.0)

    class Module:
        loss = head

    class Trainer:
        global_step = 0

    warmup.on_fit_start(Trainer, Module)
    for step, expected in ((0, 0.0), (50, 0.1), (100, 0.2), (500, 0.2)):
        Trainer.global_step = step
        warmup.on_train_batch_start(Trainer, Module, None, 0)
        assert head.margin == pytest.approx(expected)
        assert head.margin_fn.margin == pytest.approx(expected)
    resumed = MarginWarmup(steps=100)
    resumed.load_state_dict(warmup.state_dict())
    assert resumed.margin_at(50) == pytest.approx(0.1)  # the target survives a restart
    with pytest.raises(TypeError, match="needs a margin head"):

        class Other:
            loss = Triplet()

        MarginWarmup().on_fit_start(Trainer, Other)


def test_multitask_adds_weighted_task_losses_and_ignores_unknown_labels() -> None:
    torch.manual_seed(6)
    head = MultiTask(8, 3, {"gender": {"classes": 2, "weight": 0.5}}, hidden=0)
    x = torch.randn(4, 8)
    labels = torch.tensor([[0, 1], [1, 0], [2, -100], [0, 1]])
    out = head(x, labels)
    ce = torch.nn.functional.cross_entropy(head.speaker(x), labels[:, 0])
    gender = head.branches["gender"](x)[:, 0]
    known = labels[:, 1] != -100
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        gender[known], labels[known, 1].float()
    )
    assert float(out.loss) == pytest.approx(float(ce + 0.5 * bce), rel=1e-5)
    assert set(head.predict(x)) == {"speaker", "gender"}
    with pytest.raises(ValueError, match=r"set data.extra_labels to \['gender'\]"):
        head(x, labels[:, 0])
