"""WeSpeaker's VoxCeleb back end, value for value (wenet-e2e/wespeaker at ``dfa7419``:
``examples/voxceleb/v2/local/score*.sh`` run ``wespeaker/bin/score.py``, ``score_norm.py``,
``score_calibration.py``, ``tools/vector_mean.py`` and ``tools/generate_calibration_trial.py``):

1. the mean of the training set's embeddings is subtracted from every embedding, then trials are
   scored by cosine (``score.py --cal_mean True``);
2. AS-norm (``score_norm.py``): the cohort is one mean embedding per training speaker over *all*
   its utterances (``vector_mean.py``), centred the same way; each side's ``top_n`` (300) highest
   cosine scores against it give a mean and a (population) standard deviation, and
   ``s' = ((s - μ_e) / σ_e + (s - μ_t) / σ_t) / 2``;
3. QMF (``score_calibration.py``): 13 quality measures per trial — the AS-norm score, then
   min / max / max − min / max ÷ min over the two utterances of the duration (capped at 20 s),
   of the centred embedding's norm and of the top-``n`` cohort mean — weighed by a linear model
   trained (L-BFGS on Cllr) on calibration trials drawn from the training set
   (``generate_calibration_trial.py``: short 2–6 s and long > 6 s utterances, 6 trials a round).
"""

import random
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.nn.functional import normalize

_FORMS = ("min", "max", "diff", "ratio")
QMF_MEASURES = (
    "score",
    *(f"{measure}_{form}" for measure in ("duration", "norm", "cohort_mean") for form in _FORMS),
)


def speaker_means(embeddings: Tensor, speakers: Sequence[str]) -> tuple[Tensor, list[str]]:
    """(S,D) mean embedding of each speaker over all its rows of (C,D) ``embeddings``, and the
    speakers in order of first appearance (``vector_mean.py``).

    Example:
        >>> speaker_means(torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 5.0]]), ["a", "a", "b"])
        (tensor([[2., 1.],
                [0., 5.]]), ['a', 'b'])
    """
    names = list(dict.fromkeys(speakers))
    index = {s: i for i, s in enumerate(names)}
    groups = torch.tensor([index[s] for s in speakers], dtype=torch.long)
    sums = embeddings.new_zeros(len(names), embeddings.shape[1]).index_add_(0, groups, embeddings)
    return sums / torch.bincount(groups, minlength=len(names)).to(embeddings.dtype)[:, None], names


def cohort_top_statistics(
    embeddings: Tensor, cohort: Tensor, top_n: int, chunk: int = 4096
) -> tuple[Tensor, Tensor]:
    """(U,) mean and population standard deviation of each embedding's ``top_n`` highest cosine
    scores against the (S,D) cohort (``score_norm.py``'s ``get_mean_std``; ``top_n`` clipped
    to S, as NumPy's slice clips it)."""
    if top_n < 1:
        raise ValueError(f"top_n must be at least 1, got {top_n}")
    cohort = normalize(cohort.double(), dim=1)
    k = min(top_n, len(cohort))
    means, stds = [], []
    for start in range(0, len(embeddings), chunk):
        block = normalize(embeddings[start : start + chunk].double(), dim=1) @ cohort.T
        top = block.topk(k, dim=1).values
        means.append(top.mean(dim=1))
        stds.append(top.std(dim=1, correction=0))
    if not means:
        return torch.empty(0, dtype=torch.float64), torch.empty(0, dtype=torch.float64)
    return torch.cat(means), torch.cat(stds)


class Statistics(NamedTuple):
    """What WeSpeaker's scoring knows of each of U utterances: the unit-length centred embedding
    (U,D), the centred embedding's norm (U,) and its top-n cohort scores' mean and std (U,)."""

    unit: Tensor
    magnitude: Tensor
    cohort_mean: Tensor
    cohort_std: Tensor


def statistics(embeddings: Tensor, mean: Tensor, cohort: Tensor, top_n: int = 300) -> Statistics:
    """:class:`Statistics` of (U,D) ``embeddings`` once the (D,) training mean ``mean`` is
    subtracted from them and from the (S,D) ``cohort`` of speaker means (:func:`speaker_means`):
    ``score.py`` and ``score_norm.py``'s ``split_embedding`` subtract it from both."""
    centred = embeddings.double() - mean.double()
    mu, sigma = cohort_top_statistics(centred, cohort.double() - mean.double(), top_n)
    return Statistics(normalize(centred, dim=1), centred.norm(dim=1), mu, sigma)


def trial_scores(stats: Statistics, enroll: Tensor, test: Tensor) -> tuple[Tensor, Tensor]:
    """(N,) cosine scores of the centred embeddings of trials (rows ``enroll``, ``test``) and
    their AS-norm: ``((s - μ_e) / σ_e + (s - μ_t) / σ_t) / 2``."""
    cosine = (stats.unit[enroll] * stats.unit[test]).sum(dim=1)
    mu, sigma = stats.cohort_mean, stats.cohort_std
    return cosine, 0.5 * ((cosine - mu[enroll]) / sigma[enroll] + (cosine - mu[test]) / sigma[test])


def _ordered(a: Tensor, b: Tensor) -> list[Tensor]:
    """``reorder_values``: min, max, max − min, max ÷ min of each pair of values."""
    low, high = torch.minimum(a, b), torch.maximum(a, b)
    return [low, high, high - low, high / low]


def qmf_measures(
    scores: Tensor,
    enroll: Tensor,
    test: Tensor,
    durations: Tensor,
    magnitudes: Tensor,
    cohort_means: Tensor,
    max_duration: float = 20.0,
) -> np.ndarray:
    """(N,13) quality measures of N trials in :data:`QMF_MEASURES` order
    (``gather_calibration_factors``): the score, then ``_ordered`` durations (seconds, capped
    at ``max_duration``), centred-embedding norms and top-n cohort means of the two sides.

    Rounded as WeSpeaker's text files round them on their way to the calibration (the score to
    5 decimals; norms and cohort means to 4, and so every measure after ordering): its L-BFGS
    fit over these collinear measures (diff = max − min) moves with the last bits of its input,
    so the same rounding gives the same model."""
    columns = [scores.double().numpy().round(5)]
    norms, means = magnitudes.double().round(decimals=4), cohort_means.double().round(decimals=4)
    for values in (durations.double().clamp_max(max_duration), norms, means):
        ordered = _ordered(values[enroll], values[test])
        columns += [c.numpy().round(4) for c in ordered]
    return np.stack(columns, axis=1)


def calibration_trials(
    durations: Sequence[float], speakers: Sequence[str], count: int = 10000, seed: int = 0
) -> tuple[list[int], list[int], list[int]]:
    """WeSpeaker's calibration trials among rows with these ``durations`` (seconds) and
    ``speakers`` (``generate_calibration_trial.py``): speakers with both short (2–6 s) and long
    (> 6 s) utterances; ``count // 2`` rounds of a target and a non-target trial each
    short–short, short–long and long–long (the target pairs may repeat a row, as there).

    Returns:
        (enroll rows, test rows, labels: 1 same speaker), 3 x ``count`` trials in all, or empty
        lists when fewer than two speakers have both kinds.
    """
    short: dict[str, list[int]] = {}
    long: dict[str, list[int]] = {}
    for row, (duration, speaker) in enumerate(zip(durations, speakers, strict=True)):
        if 2 < duration < 6:
            short.setdefault(speaker, []).append(row)
        if duration > 6:
            long.setdefault(speaker, []).append(row)
    long = {s: rows for s, rows in long.items() if s in short}
    short = {s: rows for s, rows in short.items() if s in long}
    names = list(short)
    enroll: list[int] = []
    test: list[int] = []
    labels: list[int] = []
    if len(names) < 2:
        return enroll, test, labels
    rng = random.Random(seed)

    def add(a: int, b: int, label: int) -> None:
        enroll.append(a)
        test.append(b)
        labels.append(label)

    for _ in range(count // 2):
        speaker = rng.choice(names)
        i = names.index(speaker)
        other = rng.choice(names[:i] + names[i + 1 :])
        first, second = rng.choices(short[speaker], k=2)  # short to short
        add(first, second, 1)
        add(first, rng.choice(short[other]), 0)
        first = rng.choice(short[speaker])  # short to long
        add(first, rng.choice(long[speaker]), 1)
        add(first, rng.choice(long[other]), 0)
        first, second = rng.choices(long[speaker], k=2)  # long to long
        add(first, second, 1)
        add(first, rng.choice(long[other]), 0)
    return enroll, test, labels


def _cllr(target: Tensor, nontarget: Tensor) -> Tensor:
    """``score_calibration.py``'s Cllr in bits, as written there (``log1p(exp(-x))``: the same
    rounding, so that L-BFGS takes the same steps)."""
    miss = torch.log1p(torch.exp(-target)).mean()
    false_alarm = torch.log1p(torch.exp(nontarget)).mean()
    return 0.5 * (miss + false_alarm) / np.log(2)


def train_qmf(x: np.ndarray, labels: np.ndarray, max_epochs: int = 50) -> tuple[np.ndarray, float]:
    """``train_calibration_model``: a linear model over the (N,K) measures ``x`` (weights
    1/K, bias 0 at first), trained in float64 by L-BFGS (rate 0.01) on the Cllr of (N,)
    ``labels`` (1: target), one step an epoch until the loss improves by less than 1e-4.

    Returns:
        ``(weights (K,), bias)``: ``llr = x @ weights + bias``.
    """
    x = torch.as_tensor(np.asarray(x, dtype=np.float64))
    target = torch.as_tensor(np.asarray(labels)).bool()
    if target.all() or not target.any():
        raise ValueError("QMF needs target and non-target calibration trials")
    model = torch.nn.Linear(x.shape[1], 1).double()
    torch.nn.init.constant_(model.weight, 1.0 / x.shape[1])
    torch.nn.init.constant_(model.bias, 0.0)
    optimizer = torch.optim.LBFGS(model.parameters(), lr=0.01)

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = _cllr(model(x[target]), model(x[~target]))
        loss.backward()
        return loss

    best, threads = 1e6, torch.get_num_threads()
    torch.set_num_threads(1)  # 13 columns: threads only add overhead (12x on a busy 2-core CPU)
    try:
        for _ in range(max_epochs):
            loss = float(optimizer.step(closure).detach())
            if best - loss < 1e-4:
                break
            best = min(best, loss)
    finally:
        torch.set_num_threads(threads)
    return model.weight.detach()[0].numpy().copy(), float(model.bias.detach()[0])
