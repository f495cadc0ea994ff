"""Plain softmax cross-entropy over a linear speaker classifier."""

from torch import Tensor, nn

from speakerid.contracts import HeadOutput, label_column


class Softmax(nn.Module):
    """Linear classifier + cross-entropy, the baseline speaker-classification head.

    Example:
        >>> head = Softmax(embed_dim=16, num_speakers=4)
        >>> out = head(torch.randn(8, 16), torch.randint(0, 4, (8,)))
        >>> out.loss.shape, out.logits.shape
        (torch.Size([]), torch.Size([8, 4]))
    """

    def __init__(self, embed_dim: int, num_speakers: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)  # Deep Speaker's pre-training uses 0.5
        self.classifier = nn.Linear(embed_dim, num_speakers)

    def classify(self, embeddings: Tensor) -> Tensor:
        """Class logits (B,C), for identification."""
        return self.classifier(embeddings)

    def forward(self, embeddings: Tensor, labels: Tensor) -> HeadOutput:
        logits = self.classifier(self.dropout(embeddings))  # (B,D) -> (B,C)
        return HeadOutput(nn.functional.cross_entropy(logits, label_column(labels)), logits)
