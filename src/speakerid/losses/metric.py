"""Metric-learning heads on batches of N speakers x M utterances: GE2E, angular prototypical,
triplet. None has a classifier (``logits`` is None)."""

import torch
from torch import Tensor, nn

from speakerid.contracts import HeadOutput, label_column


def group_by_speaker(embeddings: Tensor, labels: Tensor) -> Tensor:
    """(B,D) embeddings of N speakers with M utterances each -> (N,M,D), speakers in label order.

    Raises:
        ValueError: speakers have different numbers of utterances, or fewer than 2 (use an
            N x M sampler: ``sampler=speaker_batches``).
    """
    speakers, inverse, counts = labels.unique(return_inverse=True, return_counts=True)
    if counts.min() < 2 or (counts != counts[0]).any():
        raise ValueError(
            "this head needs every speaker of a batch M >= 2 times (N x M batches: "
            f"sampler=speaker_batches); got counts {sorted(counts.tolist())}"
        )
    order = torch.argsort(inverse, stable=True)
    return embeddings[order].reshape(len(speakers), int(counts[0]), -1)


def _similarity(x: Tensor, y: Tensor, kind: str) -> Tensor:
    """Similarity of matching rows of x and y (broadcast over leading dims)."""
    if kind == "cosine":
        return nn.functional.cosine_similarity(x, y, dim=-1, eps=1e-8)
    if kind == "euclidean":
        return -(x - y).square().sum(-1).clamp_min(1e-12).sqrt()
    if kind == "manhattan":
        return -(x - y).abs().sum(-1)
    if kind == "dot":
        return (x * y).sum(-1)
    raise ValueError(f"similarity must be cosine, euclidean, manhattan or dot, got {kind!r}")


class Ge2e(nn.Module):
    """Generalized end-to-end loss (Wan et al., 2018, https://arxiv.org/abs/1710.10467).

    For utterance i of speaker j, similarities to every speaker's centroid — its own computed
    without it, ``(sum_m e_jm - e_ji) / (M - 1)`` (eq. 8), the others inclusive — are scaled as
    ``S = w * sim + b`` (learnable, w kept positive). ``softmax``: cross-entropy over the N
    centroids (eq. 6); ``contrast``: ``1 - sigmoid(S_jij) + max_k!=j sigmoid(S_jik)`` (eq. 7, the
    paper's; the original project used a BCE instead). The loss is the mean over the N*M
    utterances (the paper sums; the mean keeps the learning rate independent of N and M).

    Args:
        variant: ``softmax`` or ``contrast``.
        similarity: ``cosine`` (the paper's), ``euclidean`` / ``manhattan`` (negative distances)
            or ``dot``.
        init_w, init_b: initial scale and bias (10, -5).

    Example:
        >>> head = Ge2e()
        >>> head(torch.randn(12, 8), torch.arange(3).repeat_interleave(4)).loss.shape
        torch.Size([])
    """

    def __init__(
        self,
        variant: str = "softmax",
        similarity: str = "cosine",
        init_w: float = 10.0,
        init_b: float = -5.0,
    ) -> None:
        super().__init__()
        if variant not in ("softmax", "contrast"):
            raise ValueError(f"variant must be 'softmax' or 'contrast', got {variant!r}")
        _similarity(torch.zeros(1), torch.zeros(1), similarity)  # validates the name
        self.variant = variant
        self.similarity = similarity
        self.w = nn.Parameter(torch.tensor(float(init_w)))
        self.b = nn.Parameter(torch.tensor(float(init_b)))

    def scores(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """S of shape (N,M,N): utterance (j,i) against every speaker k's centroid."""
        e = group_by_speaker(embeddings.float(), label_column(labels))  # (N,M,D)
        n, m, _ = e.shape
        total = e.sum(1)  # (N,D)
        inclusive = total / m
        exclusive = (total[:, None] - e) / (m - 1)  # (N,M,D)
        sim = _similarity(e[:, :, None, :], inclusive[None, None, :, :], self.similarity)
        own = _similarity(e, exclusive, self.similarity)  # (N,M)
        eye = torch.eye(n, dtype=torch.bool, device=e.device)[:, None, :].expand(n, m, n)
        sim = torch.where(eye, own[:, :, None].expand(n, m, n), sim)
        return self.w.clamp_min(1e-6) * sim + self.b

    def forward(self, embeddings: Tensor, labels: Tensor) -> HeadOutput:
        s = self.scores(embeddings, labels)
        n, m, _ = s.shape
        target = torch.arange(n, device=s.device).repeat_interleave(m)
        flat = s.reshape(n * m, n)
        if self.variant == "softmax":
            return HeadOutput(nn.functional.cross_entropy(flat, target))
        sig = torch.sigmoid(flat)
        own = sig.gather(1, target[:, None]).squeeze(1)
        others = sig.masked_fill(nn.functional.one_hot(target, n).bool(), float("-inf"))
        return HeadOutput((1 - own + others.amax(1)).mean())


class AngularPrototypical(nn.Module):
    """Angular prototypical loss (Chung et al., 2020, https://arxiv.org/abs/2003.11982): the last
    utterance of each speaker is the query, the mean of the others its prototype;
    cross-entropy over ``w * cos(query_j, prototype_k) + b`` (learnable, w kept positive).

    Example:
        >>> head = AngularPrototypical()
        >>> head(torch.randn(6, 8), torch.arange(3).repeat_interleave(2)).loss.shape
        torch.Size([])
    """

    def __init__(self, init_w: float = 10.0, init_b: float = -5.0) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(float(init_w)))
        self.b = nn.Parameter(torch.tensor(float(init_b)))

    def forward(self, embeddings: Tensor, labels: Tensor) -> HeadOutput:
        e = group_by_speaker(embeddings.float(), label_column(labels))  # (N,M,D)
        query, prototype = e[:, -1], e[:, :-1].mean(1)
        cos = nn.functional.cosine_similarity(query[:, None], prototype[None], dim=-1)  # (N,N)
        logits = self.w.clamp_min(1e-6) * cos + self.b
        target = torch.arange(len(e), device=e.device)
        return HeadOutput(nn.functional.cross_entropy(logits, target))


class Triplet(nn.Module):
    """Triplet loss on cosine similarity (Deep Speaker): ``mean(max(cos(a,n) - cos(a,p) + margin,
    0))`` over anchors that have a positive.

    Every utterance of the batch is an anchor. ``mining``: ``random`` picks one positive and one
    negative at random (torch's generator), ``hard`` the hardest — the positive with the lowest
    cosine and the negative with the highest. With ``bank_size`` > 0 the candidates also include
    the last ``bank_size`` embeddings of earlier batches (detached; Deep Speaker's "recent
    embeddings" for hard mining), so small batches still find hard examples.

    Example:
        >>> head = Triplet(margin=0.1, mining="hard")
        >>> head(torch.randn(6, 8), torch.tensor([0, 0, 1, 1, 2, 2])).loss.shape
        torch.Size([])
    """

    def __init__(self, margin: float = 0.1, mining: str = "random", bank_size: int = 0) -> None:
        super().__init__()
        if mining not in ("random", "hard"):
            raise ValueError(f"mining must be 'random' or 'hard', got {mining!r}")
        self.margin = margin
        self.mining = mining
        self.bank_size = bank_size
        self.register_buffer("bank", torch.zeros(0), persistent=False)
        self.register_buffer("bank_labels", torch.zeros(0, dtype=torch.long), persistent=False)

    def forward(self, embeddings: Tensor, labels: Tensor) -> HeadOutput:
        labels = label_column(labels)
        anchors = nn.functional.normalize(embeddings.float(), dim=-1)
        candidates, cand_labels = anchors, labels
        if self.bank_size and len(self.bank):
            candidates = torch.cat([anchors, self.bank.to(anchors)])
            cand_labels = torch.cat([labels, self.bank_labels.to(labels.device)])
        cos = anchors @ candidates.T  # (B, B + bank)
        same = labels[:, None] == cand_labels[None, :]
        self_pair = torch.zeros_like(same)
        self_pair[:, : len(labels)] = torch.eye(len(labels), dtype=torch.bool, device=same.device)
        positive, negative = same & ~self_pair, ~same
        usable = positive.any(1) & negative.any(1)
        if not usable.any():
            raise ValueError("no anchor has both a positive and a negative: batch needs repeats")
        if self.mining == "hard":
            pos = cos.masked_fill(~positive, float("inf")).amin(1)
            neg = cos.masked_fill(~negative, float("-inf")).amax(1)
        else:
            noise = torch.rand(cos.shape, device=cos.device)
            pos = cos.gather(1, noise.masked_fill(~positive, -1).argmax(1, keepdim=True)).squeeze(1)
            neg = cos.gather(1, noise.masked_fill(~negative, -1).argmax(1, keepdim=True)).squeeze(1)
        loss = torch.relu(neg - pos + self.margin)[usable].mean()
        if self.bank_size and self.training:  # newest first
            old = (
                self.bank.to(anchors) if len(self.bank) else anchors.new_zeros(0, anchors.shape[1])
            )
            self.bank = torch.cat([anchors.detach(), old])[: self.bank_size]
            old_labels = self.bank_labels.to(labels.device)
            self.bank_labels = torch.cat([labels, old_labels])[: self.bank_size]
        return HeadOutput(loss)
