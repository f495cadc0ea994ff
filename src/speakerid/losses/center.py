"""Contrastive-center loss (Qi & Su, 2017) beside a softmax classifier, with centers that have
their own optimizer."""

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from speakerid.contracts import HeadOutput, label_column


class ContrastiveCenter(nn.Module):
    """Cross-entropy over a linear classifier plus ``lambda_`` times the contrastive-center term

    ``L_c = 1/2 * ||h_i - c_{y_i}||^2 / (sum_{j != y_i} ||h_i - c_j||^2 + delta)``

    averaged over the batch ("Contrastive-center loss for deep neural networks",
    https://arxiv.org/abs/1707.07391; the paper sums over the batch, the mean keeps ``lambda_``
    independent of the batch size). The centers are learned by their own optimizer
    (``center_optimizer``, a partial such as Adagrad lr 1e-3 or Adam lr 2e-3), which the system
    steps after the main one; the main optimizer does not see them (:meth:`own_parameters`).

    Example:
        >>> head = ContrastiveCenter(embed_dim=8, num_speakers=3)
        >>> out = head(torch.randn(6, 8), torch.tensor([0, 0, 1, 1, 2, 2]))
        >>> out.logits.shape
        torch.Size([6, 3])
    """

    def __init__(
        self,
        embed_dim: int,
        num_speakers: int,
        lambda_: float = 1.0,
        delta: float = 1.0,
        center_optimizer: Callable[..., Optimizer] | None = None,
    ) -> None:
        super().__init__()
        self.classifier = nn.Linear(embed_dim, num_speakers)
        self.centers = nn.Parameter(torch.randn(num_speakers, embed_dim))
        self.lambda_ = lambda_
        self.delta = delta
        self.factory = center_optimizer or (lambda params: torch.optim.Adagrad(params, lr=1e-3))
        self.center_optimizer: Optimizer | None = None  # made on first use, on the centers' device
        self._pending_state: dict | None = None

    def own_parameters(self) -> list[nn.Parameter]:
        """Parameters this head optimizes itself."""
        return [self.centers]

    def step_own(self) -> None:
        """One step of the centers' optimizer (after the backward pass), then clear their grads."""
        if self.center_optimizer is None:
            self.center_optimizer = self.factory([self.centers])
            if self._pending_state is not None:
                self.center_optimizer.load_state_dict(self._pending_state)
                self._pending_state = None
        self.center_optimizer.step()
        self.center_optimizer.zero_grad(set_to_none=True)

    def get_extra_state(self) -> dict:
        """The centers' optimizer state travels with the weights (exact resumption)."""
        if self.center_optimizer is not None:
            return {"center_optimizer": self.center_optimizer.state_dict()}
        return {"center_optimizer": self._pending_state}

    def set_extra_state(self, state: dict) -> None:
        self._pending_state = state.get("center_optimizer")
        self.center_optimizer = None

    def center_term(self, features: Tensor, labels: Tensor) -> Tensor:
        distances = torch.cdist(features.float(), self.centers.float()).square()  # (B,C)
        own = distances.gather(1, labels[:, None]).squeeze(1)
        others = distances.sum(1) - own
        return (0.5 * own / (others + self.delta)).mean()

    def classify(self, embeddings: Tensor) -> Tensor:
        """Class logits (B,C), for identification."""
        return self.classifier(embeddings)

    def forward(self, embeddings: Tensor, labels: Tensor) -> HeadOutput:
        labels = label_column(labels)
        logits = self.classifier(embeddings)
        loss = nn.functional.cross_entropy(logits, labels)
        loss = loss + self.lambda_ * self.center_term(embeddings, labels)
        return HeadOutput(loss, logits)
