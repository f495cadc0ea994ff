"""Additive angular margin softmax (ArcFace), with speechbrain's margin function."""

import torch
from speechbrain.nnet.losses import AdditiveAngularMargin
from torch import Tensor, nn

from speakerid.contracts import HeadOutput, label_column


class MarginSoftmax(nn.Module):
    """Cosine classifier whose true-class logit gets a margin (``margin_fn``, set by
    :meth:`set_margin`); the returned logits are the scaled cosines without margin."""

    def __init__(self, embed_dim: int, num_speakers: int, margin: float, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_speakers, embed_dim))
        nn.init.xavier_normal_(self.weight)
        self.scale = scale
        self.set_margin(margin)

    def set_margin(self, margin: float) -> None:
        """Change the margin (the warm-up callback does, every step)."""
        raise NotImplementedError

    def cosine(self, embeddings: Tensor) -> Tensor:
        """(B,C) cosines between the embeddings and the class weights."""
        weight = nn.functional.normalize(self.weight)
        return nn.functional.linear(nn.functional.normalize(embeddings.float()), weight)

    def classify(self, embeddings: Tensor) -> Tensor:
        """Class logits (B,C): the scaled cosines, for identification."""
        return self.scale * self.cosine(embeddings)

    def forward(self, embeddings: Tensor, labels: Tensor) -> HeadOutput:
        cosine = self.cosine(embeddings)
        labels = label_column(labels)
        one_hot = nn.functional.one_hot(labels, cosine.shape[1]).to(cosine.dtype)
        loss = nn.functional.cross_entropy(self.margin_fn(cosine, one_hot), labels)
        return HeadOutput(loss, self.scale * cosine.detach())


class AamSoftmax(MarginSoftmax):
    """AAM-softmax: cross-entropy over ``scale * cos(theta + margin)`` for the true class.

    Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", 2019; for
    speakers, Liu et al., "Margin Matters", https://arxiv.org/abs/1906.07317.
    The returned logits are the scaled cosines without margin (what a classifier would predict).

    Args:
        embed_dim: input embedding size (D).
        num_speakers: classes (C).
        margin: additive angle in radians.
        scale: logit scale s.
        easy_margin: apply the margin only where cos(theta) > 0.

    Example:
        >>> head = AamSoftmax(embed_dim=16, num_speakers=4, margin=0.2, scale=30.0)
        >>> head(torch.randn(8, 16), torch.randint(0, 4, (8,))).logits.shape
        torch.Size([8, 4])
    """

    def __init__(
        self,
        embed_dim: int,
        num_speakers: int,
        margin: float = 0.2,
        scale: float = 30.0,
        easy_margin: bool = False,
    ) -> None:
        self.easy_margin = easy_margin
        super().__init__(embed_dim, num_speakers, margin, scale)

    def set_margin(self, margin: float) -> None:
        """Change the margin (the warm-up callback does, every step)."""
        self.margin = margin
        self.margin_fn = AdditiveAngularMargin(
            margin=margin, scale=self.scale, easy_margin=self.easy_margin
        )
