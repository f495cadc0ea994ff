"""Score calibration with quality measures (QMF: Thienpondt, Desplanques, Demuynck, "The IDLAB
VoxSRC-20 submission", 2020; Nandwana et al. 2019): a logistic regression from the trial score
and the two utterances' quality (log duration, embedding norm) to a log-likelihood ratio.

Trained on trials of *training* speakers, it turns scores into LLRs whose Bayes threshold
``log((1 - P) / P)`` is right for a target prior ``P``: the actual DCF there approaches the minimum.
Balanced class weights make the regression's log-odds an LLR (prior 0.5).

Few or mismatched calibration trials make LLRs worse than none (96 trials of real voices turned
a 12 % EER into 18 %, Cllr 3.5). So a calibration needs ``per_parameter`` trials per parameter in
each class, is regularized, and is kept only when its Cllr on held-out trials is below 1 and
below that of the raw scores read as LLRs; the Cllr travels with it, and an unchecked or failed
calibration yields no LLR (:meth:`Calibration.problem`).
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

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
    """A fitted calibration: ``llr = weights . features + bias`` over ``features``, with the Cllr
    of its LLRs on held-out trials (``cllr``) and of the raw scores read as LLRs there
    (``cllr_uncalibrated``): a calibration is used only when it beats both no information (1) and
    the raw scores (:meth:`problem`)."""

    features: list[str]
    weights: list[float]
    bias: float
    scoring: str = "cosine"
    trained_on: int = 0  # calibration trials
    cllr: float | None = None  # held-out; None: never checked
    cllr_uncalibrated: float | None = None

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        labels: np.ndarray,
        features: Sequence[str],
        scoring: str = "cosine",
        regularization: float = 1.0,
        per_parameter: int = 10,
    ) -> "Calibration":
        """Fit on (N,K) features ``x`` of N trials and their (N,) labels (1: same speaker).

        The features are standardized, so the L2 penalty (inverse strength ``regularization``,
        scikit-learn's ``C``) treats each alike; the weights are folded back to raw features.

        Raises:
            ValueError: a class is missing, or the smaller one holds fewer than
                ``per_parameter`` trials per fitted parameter (K weights and the bias: the
                "events per variable" rule of logistic regression).
        """
        from sklearn.linear_model import LogisticRegression

        x, labels = np.asarray(x, dtype=np.float64), np.asarray(labels).astype(int)
        problem = too_few_trials(labels, x.shape[1] + 1, per_parameter)
        if problem:
            raise ValueError(problem)
        mean, scale = x.mean(axis=0), x.std(axis=0)
        # a feature that varies by less than 1e-4 of its size (the norm of embeddings a model
        # normalizes itself varies by float rounding) carries no information, only huge weights
        # that rounding elsewhere would turn into LLR errors: it gets weight 0
        used = scale > 1e-4 * np.maximum(np.abs(mean), 1.0)
        model = LogisticRegression(class_weight="balanced", C=regularization, max_iter=1000)
        model.fit((x[:, used] - mean[used]) / scale[used], labels)
        weights = np.zeros(x.shape[1])
        weights[used] = model.coef_[0] / scale[used]
        bias = float(model.intercept_[0] - weights[used] @ mean[used])
        return cls(list(features), [float(w) for w in weights], bias, scoring, len(labels))

    def llr(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ np.asarray(self.weights) + self.bias

    def assessed(self, x: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> "Calibration":
        """This calibration with its held-out Cllr on trials it was not trained on: their (N,K)
        features ``x``, (N,) raw scores and labels."""
        return replace(
            self,
            cllr=cllr(self.llr(x), labels),
            cllr_uncalibrated=cllr(np.asarray(scores, dtype=np.float64), labels),
        )

    def problem(self) -> str | None:
        """Why its LLRs must not be used (None: they may)."""
        if self.cllr is None or self.cllr_uncalibrated is None:
            return "it was never checked on held-out trials (stored by an older speakerid-eval)"
        if not np.isfinite(self.cllr) or self.cllr >= 1:
            return f"its held-out Cllr {self.cllr:.3f} is not below 1 (no information)"
        if self.cllr >= self.cllr_uncalibrated:
            return (
                f"its held-out Cllr {self.cllr:.3f} is not below the uncalibrated scores' "
                f"{self.cllr_uncalibrated:.3f}"
            )
        return None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        def number(key: str) -> float | None:
            return None if d.get(key) is None else float(d[key])

        return cls(
            list(d["features"]),
            [float(w) for w in d["weights"]],
            float(d["bias"]),
            d.get("scoring", "cosine"),
            int(d.get("trained_on", 0)),
            number("cllr"),
            number("cllr_uncalibrated"),
        )


def too_few_trials(labels: np.ndarray, parameters: int, per_parameter: int = 10) -> str | None:
    """Why (N,) trial ``labels`` are too few to fit ``parameters`` (None: enough): each class
    must hold ``per_parameter`` trials per parameter."""
    labels = np.asarray(labels).astype(bool)
    smaller = int(min(labels.sum(), (~labels).sum()))
    needed = per_parameter * parameters
    if smaller < needed:
        return (
            f"{len(labels)} calibration trials, {smaller} in the smaller class; {parameters} "
            f"parameters need {needed} per class ({per_parameter} per parameter)"
        )
    return None


def bayes_threshold(p_target: float) -> float:
    """The LLR threshold that minimizes the expected cost at prior ``p_target`` (unit costs)."""
    return float(np.log((1 - p_target) / p_target))


def cllr(llrs: np.ndarray, labels: np.ndarray) -> float:
    """Log-likelihood-ratio cost (Brümmer): 0 for perfect LLRs, 1 for an uninformative 0."""
    llrs, target = np.asarray(llrs, dtype=np.float64), np.asarray(labels).astype(bool)
    miss = np.mean(np.logaddexp(0, -llrs[target])) / np.log(2)
    fa = np.mean(np.logaddexp(0, llrs[~target])) / np.log(2)
    return float((miss + fa) / 2)
