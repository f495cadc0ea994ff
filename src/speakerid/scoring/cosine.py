"""Cosine scoring of trials, vectorized over all trials at once."""

import torch
from torch import Tensor


def cosine_scores(embeddings: Tensor, enroll: Tensor, test: Tensor, chunk: int = 1 << 18) -> Tensor:
    """Cosine similarity of each trial's two utterances.

    Args:
        embeddings: (U,D), one row per unique utterance.
        enroll, test: (N,) row indices of each trial's two utterances.
        chunk: trials per step, bounding memory to ``2 * chunk * D`` floats.

    Returns:
        (N,) scores in [-1, 1].

    Example:
        >>> e = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
        >>> cosine_scores(e, torch.tensor([0, 0]), torch.tensor([1, 2])).tolist()
        [0.0, 1.0]
    """
    normed = torch.nn.functional.normalize(embeddings.float(), dim=1)
    return (
        torch.cat(
            [
                (normed[enroll[i : i + chunk]] * normed[test[i : i + chunk]]).sum(dim=1)
                for i in range(0, len(enroll), chunk)
            ]
        )
        if len(enroll)
        else torch.empty(0)
    )
