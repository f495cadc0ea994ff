"""Additive angular margin softmax (ArcFace), with ArcFace's (SpeechBrain's) or WeSpeaker's
treatment of angles past pi - margin."""

import math

import torch
from torch import Tensor, nn

from speakerid.contracts import HeadOutput, label_column
from speakerid.errors import ConfigError

FALLBACKS = ("arcface", "continuous")


class AdditiveAngularMargin:
    """The true class's cosine moved to ``cos(theta + margin)``, every logit times ``scale``.

    Where ``theta + margin`` passes pi, ``cos(theta + margin)`` would rise again, so below
    ``th = cos(pi - margin)`` the true cosine is shifted down instead: by ``margin * sin(margin)``
    (``fallback="arcface"``: ArcFace's and SpeechBrain's ``mm``), or by ``1 - cos(margin)``
    (``"continuous"``: WeSpeaker's ``mmm``, which meets ``cos(theta + margin) = -1`` at ``th``).
    ``easy_margin`` keeps the true cosine where it is not positive instead. The constants are
    computed as those toolkits do, so the logits agree bit for bit with WeSpeaker's wherever
    its are finite (Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face
    Recognition", 2019).

    Args:
        margin: additive angle in radians.
        scale: logit scale s.
        easy_margin: apply the margin only where cos(theta) > 0.
        fallback: ``arcface`` or ``continuous``, as above.

    Example:
        >>> cosine, one_hot = torch.tensor([[0.5, -0.2]]), torch.tensor([[1.0, 0.0]])
        >>> AdditiveAngularMargin(0.2, 30.0)(cosine, one_hot)
        tensor([[ 9.5394, -6.0000]])
    """

    def __init__(
        self, margin: float, scale: float, easy_margin: bool = False, fallback: str = "arcface"
    ) -> None:
        if fallback not in FALLBACKS:
            raise ConfigError(f"loss.fallback: arcface or continuous, not {fallback!r}")
        self.margin, self.scale = margin, scale
        self.easy_margin, self.fallback = easy_margin, fallback
        self.cos_m, self.sin_m = math.cos(margin), math.sin(margin)
        self.th = math.cos(math.pi - margin)
        if fallback == "continuous":
            self.shift = 1.0 + math.cos(math.pi - margin)  # WeSpeaker's mmm, as written there
        else:
            self.shift = math.sin(math.pi - margin) * margin  # ArcFace's mm

    def __call__(self, cosine: Tensor, one_hot: Tensor) -> Tensor:
        """(B,C) logits from (B,C) cosines and the (B,C) one-hot true classes."""
        cosine = cosine.float()
        squared = 1.0 - cosine.pow(2)
        # sin(theta) = 0 where rounding takes |cos| to 1 or past it: there WeSpeaker's sqrt has an
        # infinite gradient, or is NaN; elsewhere its value. (SpeechBrain clamps |cos| to
        # 1 - 1e-7 instead, which moves cos(theta + m) by up to 1e-4 next to theta = 0.)
        sine = torch.where(squared > 0, squared.clamp_min(1e-30).sqrt(), 0.0)
        phi = cosine * self.cos_m - sine * self.sin_m  # cos(theta + m)
        if self.easy_margin:
            phi = torch.where(cosine > 0, phi, cosine)
        else:
            phi = torch.where(cosine > self.th, phi, cosine - self.shift)
        return self.scale * (one_hot * phi + (1.0 - one_hot) * cosine)


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

    def margin_logits(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """(B,C) the logits the loss is computed over: the scaled cosines with the margin on
        each true class (what WeSpeaker's projection layer returns)."""
        return self._with_margin(self.cosine(embeddings), label_column(labels))

    def _with_margin(self, cosine: Tensor, labels: Tensor) -> Tensor:
        one_hot = nn.functional.one_hot(labels, cosine.shape[1]).to(cosine.dtype)
        return self.margin_fn(cosine, one_hot)

    def forward(self, embeddings: Tensor, labels: Tensor) -> HeadOutput:
        cosine = self.cosine(embeddings)
        labels = label_column(labels)
        loss = nn.functional.cross_entropy(self._with_margin(cosine, labels), labels)
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
        fallback: past ``theta + margin = pi``, ``arcface`` (ArcFace's and SpeechBrain's shift,
            ``margin * sin(margin)``) or ``continuous`` (WeSpeaker's, ``1 - cos(margin)``).

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
        fallback: str = "arcface",
    ) -> None:
        self.easy_margin, self.fallback = easy_margin, fallback
        super().__init__(embed_dim, num_speakers, margin, scale)

    def set_margin(self, margin: float) -> None:
        """Change the margin (the margin schedules do, every step), recomputing the constants
        as WeSpeaker's ``ArcMarginProduct.update`` does."""
        self.margin = margin
        self.margin_fn = AdditiveAngularMargin(margin, self.scale, self.easy_margin, self.fallback)
