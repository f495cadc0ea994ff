"""Quality-measure calibration against the analytic LLR of two Gaussians, its costs, and the
checks that keep a calibration from too few trials or one worse than the raw scores out."""

import numpy as np
import pytest
import torch

from speakerid.analysis.report import EvalSet
from speakerid.analysis.sections import Calibration as Section
from speakerid.analysis.sections import EvalContext
from speakerid.data.manifest import Utterance
from speakerid.data.trialset import TrialSet
from speakerid.scoring.calibration import (
    Calibration,
    bayes_threshold,
    cllr,
    quality_features,
    too_few_trials,
)


def test_logistic_calibration_recovers_the_gaussian_llr() -> None:
    """Targets ~ N(1, 1), non-targets ~ N(-1, 1): the true LLR of a score x is 2x."""
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(1, 1, 20000), rng.normal(-1, 1, 20000)])
    labels = np.r_[np.ones(20000), np.zeros(20000)]
    fitted = Calibration.fit(scores[:, None], labels, ["score"])
    assert abs(fitted.weights[0] - 2.0) < 0.05 and abs(fitted.bias) < 0.05
    llr = fitted.llr(scores[:, None])
    assert abs(cllr(np.zeros_like(llr), labels) - 1.0) < 1e-12  # an uninformative LLR costs 1
    assert cllr(llr, labels) < 0.6  # these classes overlap: Cllr of the true LLR 2x is ~0.51
    assert Calibration.from_dict(fitted.to_dict()) == fitted  # stored with the model


def test_bayes_threshold_and_features() -> None:
    assert bayes_threshold(0.5) == 0.0 and abs(bayes_threshold(0.01) - np.log(99)) < 1e-12
    x = quality_features(
        torch.tensor([0.3, 0.7]),
        torch.tensor([0, 1]),
        torch.tensor([2, 0]),
        samples=torch.tensor([100.0, 1000.0, 10.0]),
        norms=torch.tensor([1.0, 2.0, 3.0]),
    )
    expected = [
        [0.3, np.log(10), np.log(100), 1.0, 3.0],
        [0.7, np.log(100), np.log(1000), 1.0, 2.0],
    ]
    np.testing.assert_allclose(x, expected, rtol=1e-6)


def _gaussian_trials(n: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Scores of n targets ~ N(0.6, 0.15) and n non-targets ~ N(0.1, 0.15), plus ``shift``."""
    rng = np.random.default_rng(seed)
    scores = np.r_[rng.normal(0.6, 0.15, n), rng.normal(0.1, 0.15, n)] + shift
    return scores[:, None], np.r_[np.ones(n), np.zeros(n)]


def test_too_few_trials_per_parameter_are_refused() -> None:
    x, labels = _gaussian_trials(48, 0)  # 96 trials: the case
    wide = np.hstack([x, np.random.default_rng(1).normal(size=(96, 4))])  # 5 features + bias
    assert too_few_trials(labels, 6) == (
        "96 calibration trials, 48 in the smaller class; 6 parameters need 60 per class "
        "(10 per parameter)"
    )
    with pytest.raises(ValueError, match="6 parameters need 60 per class"):
        Calibration.fit(wide, labels, ["score", "a", "b", "c", "d"])
    with pytest.raises(ValueError, match="0 in the smaller class"):
        Calibration.fit(x, np.ones(96), ["score"])
    assert too_few_trials(labels, 2) is None and Calibration.fit(x, labels, ["score"]).trained_on


def test_regularization_shrinks_the_llrs_of_separable_trials() -> None:
    """Perfectly separated scores drive an unregularized fit to huge LLRs (+26 / -35 seen)."""
    x = np.r_[np.linspace(0.5, 0.9, 40), np.linspace(-0.2, 0.3, 40)][:, None]
    labels = np.r_[np.ones(40), np.zeros(40)]
    loose = Calibration.fit(x, labels, ["score"], regularization=1e4)
    firm = Calibration.fit(x, labels, ["score"])
    assert np.abs(loose.llr(x)).max() > 20 and np.abs(firm.llr(x)).max() < 6
    # standardization is folded back: the weights apply to the raw features
    z = (x - x.mean()) / x.std()
    assert np.allclose(Calibration.fit(z, labels, ["score"]).llr(z), firm.llr(x))
    # a feature that only float rounding moves (embeddings normalized by the model) gets weight 0
    rounding = 1 + 1e-8 * np.random.default_rng(0).standard_normal((80, 1))
    fitted = Calibration.fit(np.hstack([x, rounding]), labels, ["score", "norm"])
    assert fitted.weights[1] == 0 and np.allclose(fitted.weights[0], firm.weights[0])


def test_a_calibration_is_used_only_when_it_beats_the_raw_scores_on_held_out_trials() -> None:
    x, labels = _gaussian_trials(200, 0)
    fitted = Calibration.fit(x, labels, ["score"])
    assert fitted.problem() == (
        "it was never checked on held-out trials (stored by an older speakerid-eval)"
    )
    good = fitted.assessed(*_held_out(1, 0.0))
    assert good.problem() is None and good.cllr < good.cllr_uncalibrated and good.cllr < 1
    assert Calibration.from_dict(good.to_dict()) == good  # the Cllr travels with it
    # held-out trials from another condition (scores shifted by -0.5): the calibration's
    # LLRs are worse than no information
    bad = fitted.assessed(*_held_out(2, -0.5))
    assert bad.cllr > 1 and "is not below 1 (no information)" in bad.problem()
    # where the raw scores already are fair LLRs, a calibration must beat them
    scores = 10 * (_gaussian_trials(200, 3)[0][:, 0] - 0.35)
    timid = Calibration(["score"], [0.2], 0.0).assessed(scores[:, None], scores, labels)
    assert timid.cllr < 1 and "not below the uncalibrated scores'" in timid.problem()


def _held_out(seed: int, shift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, raw scores, labels) of held-out trials, their scores shifted by ``shift``."""
    x, labels = _gaussian_trials(200, seed, shift)
    return x, x[:, 0], labels


def _eval_set(test_noise: float, seed: int = 0):
    """A table of synthetic embeddings: 24 cohort speakers and 8 trial speakers of 6 utterances
    each (a speaker's direction plus noise; the trial speakers' noise is ``test_noise``), and
    every same-speaker trial of the trial speakers with as many different-speaker ones."""
    rng = np.random.default_rng(seed)
    utterances, rows = [], []
    for s in range(32):
        centre, noise = rng.normal(size=32), 0.5 if s < 24 else test_noise
        for u in range(6):
            name = f"s{s}/x/{u}"
            utterances.append(
                Utterance(name, name, f"s{s}", "x", int(rng.integers(8000, 64000)), 16000)
            )
            rows.append(centre + rng.normal(scale=noise * np.sqrt(32), size=32) / np.sqrt(32) * 3)
    test_rows = range(24 * 6, 32 * 6)
    same = [(1, a, b) for a in test_rows for b in test_rows if a < b and a // 6 == b // 6]
    others = [(0, a, b) for a in test_rows for b in test_rows if a < b and a // 6 != b // 6]
    pairs = same + [others[i] for i in rng.choice(len(others), len(same), replace=False)]
    trials = TrialSet.from_pairs("synthetic", utterances, pairs)
    index = {u.utt_id: i for i, u in enumerate(trials.utterances)}
    table = torch.zeros(len(rows), 32, dtype=torch.float32)
    for u, row in zip(utterances, rows, strict=True):
        table[index[u.utt_id]] = torch.tensor(row, dtype=torch.float32)
    cohort = torch.tensor([index[u.utt_id] for u in utterances[: 24 * 6]])
    empty = torch.zeros(0, dtype=torch.long)
    return table, EvalSet(trials, [], empty, empty, cohort, empty, empty)


def test_the_report_keeps_only_a_calibration_that_helps_on_held_out_trials(caplog) -> None:
    section = Section(scorings=["cosine"])
    table, evalset = _eval_set(test_noise=0.5)
    kept = section(table, evalset, EvalContext(out_dir=None))
    figures = kept.report["cosine"]
    assert figures["kept"] and figures["model"]["cllr"] == figures["cllr_after"] < 1
    assert figures["cllr_after"] < figures["cllr_before"]
    assert Calibration.from_dict(figures["model"]).problem() is None
    # the trial speakers recorded much worse than the cohort: the calibration is overconfident
    table, evalset = _eval_set(test_noise=1.6)
    with caplog.at_level("WARNING"):
        worse = section(table, evalset, EvalContext(out_dir=None)).report["cosine"]
    assert not worse["kept"] and "model" not in worse and worse["cllr_after"] > 1
    assert worse["why"] in caplog.text and caplog.text.count("Calibration not kept") == 1
    # too few trials: nothing is fitted
    few = Section(scorings=["cosine"], per_parameter=1000)(table, evalset, EvalContext(None))
    assert few.report["cosine"] == {
        "kept": False,
        "why": f"{few.report['trained_on_trials']} calibration trials, "
        f"{few.report['trained_on_trials'] // 2} in the smaller class; 6 parameters need 6000 "
        "per class (1000 per parameter)",
    }
