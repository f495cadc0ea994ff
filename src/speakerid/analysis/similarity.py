"""The GE2E similarity matrix: every utterance against every speaker centroid.

As in Wan et al., "Generalized End-to-End Loss for Speaker Verification" (ICASSP 2018, eq. 8), an
utterance is compared with its own speaker's centroid computed *without* it, so a speaker with one
utterance has no own centroid (such speakers are left out).
"""

import torch
from torch import Tensor
from torch.nn.functional import normalize


def similarity_matrix(embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Cosine similarity of each utterance to each speaker's centroid.

    Args:
        embeddings: (N,D).
        labels: (N,) speaker index in [0, S); every speaker needs at least 2 utterances.

    Returns:
        ``(utterance_scores, speaker_matrix, correct)``: (N,S) similarities, (S,S) their mean over
        each speaker's utterances (row: the utterances' speaker, column: the centroid), and (N,)
        whether each utterance is closest to its own speaker's centroid.
    """
    num_speakers = int(labels.max()) + 1
    counts = torch.bincount(labels, minlength=num_speakers)
    if (counts < 2).any():
        raise ValueError("every speaker needs at least 2 utterances for an exclusive centroid")
    x = normalize(embeddings.float(), dim=1)
    sums = torch.zeros(num_speakers, x.shape[1]).index_add_(0, labels, x)  # (S,D)
    scores = x @ normalize(sums, dim=1).T  # (N,S)
    rows = torch.arange(len(x))
    own = normalize(sums[labels] - x, dim=1)  # centroid of the other utterances of the speaker
    scores[rows, labels] = (x * own).sum(dim=1)
    matrix = torch.zeros(num_speakers, num_speakers).index_add_(0, labels, scores)
    matrix /= counts[:, None]
    return scores, matrix, scores.argmax(dim=1) == labels
