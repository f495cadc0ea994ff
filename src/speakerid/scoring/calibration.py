"""Score calibration with quality measures (QMF: Thienpondt, Desplanques, Demuynck, "The IDLAB
VoxSRC-20 submission", 2020; Nandwana et al. 2019): a logistic regression from the trial score
and the two utterances' quality (log duration, embedding norm) to a log-likelihood ratio.

Trained on trials of *training* speakers, it turns scores into LLRs whose Bayes threshold
``log((1 - P) / P)`` is right for a target prior ``P``: the actual DCF there approaches the minimum.
Balanced class weights make the regression's log-odds an LLR (prior 0.5).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

FEATURES = ("score", "duration", "norm")


def quality_features(
    scores: Tensor,
    enroll: Tensor,
    test: Tensor,
    samples: Tensor,
    norms: Tensor,
    use: Sequence[str] = FEATURES,
) -> np.ndarray:
    """(N,K) features of N trials: the score, then per quality measure the minimum and maximum
    over the trial's two utterances (log samples for ``duration``, the raw embedding's L2 norm
    for ``norm``), in the order of ``use``."""
    columns = []
    for name in use:
        if name == "score":
            columns.append(scores.double())
            continue
        if name == "duration":
            values = samples.double().clamp_min(1).log()
        elif name == "norm":
            values = norms.double()
        else:
            raise ValueError(f"unknown quality measure {name!r}; choose from {FEATURES}")
        a, b = values[enroll], values[test]
        columns += [torch.minimum(a, b), torch.maximum(a, b)]
    return torch.stack(columns, dim=1).numpy()


@dataclass
class Calibration:
    """A fitted calibration: ``llr = weights . features + bias`` over ``features``."""

    features: list[str]
    weights: list[float]
    bias: float
    scoring: str = "cosine"
    trained_on: int = 0  # calibration trials

    @classmethod
    def fit(
        cls, x: np.ndarray, labels: np.ndarray, features: Sequence[str], scoring: str = "cosine"
    ) -> "Calibration":
        from sklearn.linear_model import LogisticRegression

        labels = np.asarray(labels).astype(int)
        if labels.min() == labels.max():
            raise ValueError("calibration needs target and non-target trials")
        model = LogisticRegression(class_weight="balanced", C=1e4, max_iter=1000)
        model.fit(x, labels)
        return cls(
            list(features),
            [float(w) for w in model.coef_[0]],
            float(model.intercept_[0]),
            scoring,
            len(labels),
        )

    def llr(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ np.asarray(self.weights) + self.bias

    def to_dict(self) -> dict:
        return {
            "features": self.features,
            "weights": self.weights,
            "bias": self.bias,
            "scoring": self.scoring,
            "trained_on": self.trained_on,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        return cls(
            list(d["features"]),
            [float(w) for w in d["weights"]],
            float(d["bias"]),
            d.get("scoring", "cosine"),
            int(d.get("trained_on", 0)),
        )


def bayes_threshold(p_target: float) -> float:
    """The LLR threshold that minimizes the expected cost at prior ``p_target`` (unit costs)."""
    return float(np.log((1 - p_target) / p_target))


def cllr(llrs: np.ndarray, labels: np.ndarray) -> float:
    """Log-likelihood-ratio cost (Brümmer): 0 for perfect LLRs, 1 for an uninformative 0."""
    llrs, target = np.asarray(llrs, dtype=np.float64), np.asarray(labels).astype(bool)
    miss = np.mean(np.logaddexp(0, -llrs[target])) / np.log(2)
    fa = np.mean(np.logaddexp(0, llrs[~target])) / np.log(2)
    return float((miss + fa) / 2)
