"""Quality-measure calibration against the analytic LLR of two Gaussians, and its costs."""

import numpy as np
import torch

from speakerid.scoring.calibration import Calibration, bayes_threshold, cllr, quality_features


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
