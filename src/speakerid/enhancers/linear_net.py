"""MyLinearNet and its variants from the speaker-embedding enhancement project.

The original nets are fixed-width stacks for 512-d embeddings (v1: 512-1024-2048-2048-1024-512
with dropout after layers 2-4; v2 the same without dropout; v3 512-1024-1024-512 with dropout after
layer 2; v4 512-1024-1024-2048-2048-1024-1024-512). Here widths are multiples of the input size, so
one config serves any encoder. As in the original, every layer is followed by the activation; since
a ReLU output cannot be negative (and L2-normalized targets can), ``last_activation=false`` leaves
the last layer linear. Dropout is ordinary feature dropout (the original dropped whole samples).
"""

from collections.abc import Sequence

from torch import Tensor, nn

_ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU}


class LinearNet(nn.Module):
    """A stack of linear layers ``D -> w1*D -> ... -> wn*D``.

    Args:
        input_dim: embedding size D of the encoder's embeddings.
        widths: output width of each layer as a multiple of D; the last sets ``embed_dim``.
        dropout_after: 1-based layers followed by dropout.
        dropout: dropout probability.
        activation: ``relu`` or ``elu``, after every layer.
        last_activation: also after the last layer (the original's behaviour).

    Example:
        >>> net = LinearNet(input_dim=8, widths=[2, 4, 1], dropout_after=[2])
        >>> net(torch.randn(3, 8)).shape
        torch.Size([3, 8])
    """

    def __init__(
        self,
        input_dim: int,
        widths: Sequence[float] = (2, 4, 4, 2, 1),
        dropout_after: Sequence[int] = (2, 3, 4),
        dropout: float = 0.2,
        activation: str = "relu",
        last_activation: bool = True,
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
            )
        if not widths or any(w <= 0 for w in widths):
            raise ValueError(f"widths must be positive multiples of input_dim, got {list(widths)}")
        layers: list[nn.Module] = []
        size = input_dim
        for index, width in enumerate(widths, start=1):
            out = round(width * input_dim)
            layers.append(nn.Linear(size, out))
            if index < len(widths) or last_activation:
                layers.append(_ACTIVATIONS[activation]())
            if index in dropout_after and dropout > 0:
                layers.append(nn.Dropout(dropout))
            size = out
        self.layers = nn.Sequential(*layers)
        self.input_dim = input_dim
        self.embed_dim = size

    def forward(self, embeddings: Tensor) -> Tensor:
        return self.layers(embeddings)
