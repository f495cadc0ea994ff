"""Score normalization with a cohort: mean subtraction and adaptive symmetric normalization.

AS-norm (Matějka et al., "Analysis of Score Normalization in Multilingual Speaker Recognition",
Interspeech 2017): for a trial (e, t) with raw score s,

    s' = ((s - μ_e) / σ_e + (s - μ_t) / σ_t) / 2

where μ_x, σ_x are the mean and standard deviation of the ``top_k`` highest cosine scores of x
against the cohort. The statistics depend on one side only, so they are computed once per unique
utterance (U × C cosine matrix, in chunks) and then looked up per trial: 1 M trials cost the same
as their unique utterances.
"""

import torch
from torch import Tensor
from torch.nn.functional import normalize


def subtract_mean(embeddings: Tensor, cohort: Tensor) -> Tensor:
    """Centre embeddings on the cohort's mean embedding (before cosine scoring).

    Example:
        >>> subtract_mean(torch.tensor([[2.0, 1.0]]), torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
        tensor([[1.0000, 0.5000]])
    """
    if cohort.ndim != 2 or cohort.shape[1] != embeddings.shape[1] or len(cohort) == 0:
        raise ValueError(
            f"cohort {tuple(cohort.shape)} must be a non-empty (C,{embeddings.shape[1]}) matrix"
        )
    return embeddings - cohort.float().mean(dim=0)


def cohort_statistics(
    embeddings: Tensor, cohort: Tensor, top_k: int, chunk: int = 4096
) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of each embedding's ``top_k`` cosine scores against the cohort.

    Args:
        embeddings: (U,D) unique utterances.
        cohort: (C,D) cohort embeddings (training speakers, never the trial speakers).
        top_k: cohort scores kept per utterance (clipped to C).
        chunk: utterances per step, bounding memory to ``chunk * C`` floats.

    Returns:
        ``(mean, std)``, each (U,).
    """
    if top_k < 2:
        raise ValueError(f"top_k must be at least 2 (a standard deviation), got {top_k}")
    cohort = normalize(cohort.float(), dim=1)
    k = min(top_k, len(cohort))
    means, stds = [], []
    for start in range(0, len(embeddings), chunk):
        block = normalize(embeddings[start : start + chunk].float(), dim=1) @ cohort.T
        top = block.topk(k, dim=1).values
        means.append(top.mean(dim=1))
        stds.append(top.std(dim=1).clamp_min(1e-6))
    if not means:
        return torch.empty(0), torch.empty(0)
    return torch.cat(means), torch.cat(stds)


def as_norm(
    scores: Tensor,
    enroll: Tensor,
    test: Tensor,
    embeddings: Tensor,
    cohort: Tensor,
    top_k: int = 300,
) -> Tensor:
    """Adaptive symmetric normalization of trial scores.

    Args:
        scores: (N,) raw cosine scores of the trials.
        enroll, test: (N,) row indices of each trial's two utterances into ``embeddings``.
        embeddings: (U,D) the embeddings the scores came from.
        cohort: (C,D) cohort embeddings.
        top_k: cohort size per side.

    Returns:
        (N,) normalized scores.
    """
    mean, std = cohort_statistics(embeddings, cohort, top_k)
    mean, std = mean.to(scores.device), std.to(scores.device)
    return 0.5 * ((scores - mean[enroll]) / std[enroll] + (scores - mean[test]) / std[test])
