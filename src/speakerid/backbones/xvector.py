"""The x-vector TDNN (Snyder et al., 2018), speechbrain's implementation behind our contract."""

from speechbrain.lobes.models.Xvector import Xvector as _Xvector
from torch import Tensor, nn

from speakerid.backbones.reflect_padding import ReflectAtEnds


class XVector(nn.Module):
    """Five TDNN layers (512, 512, 512, 512, 1500; contexts 5, 3, 3, 1, 1; dilations 1, 2, 3,
    1, 1), statistics pooling over real frames, then a 512-d embedding layer.

    "X-Vectors: Robust DNN Embeddings for Speaker Recognition", ICASSP 2018.

    Example:
        >>> net = XVector(num_mels=24, channels=16, embed_dim=8)
        >>> net(torch.randn(2, 50, 24), torch.tensor([50, 30])).shape
        torch.Size([2, 8])
    """

    def __init__(
        self,
        num_mels: int = 80,
        channels: int = 512,
        stats_channels: int = 1500,
        embed_dim: int = 512,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.model = _Xvector(
            in_channels=num_mels,
            tdnn_blocks=5,
            tdnn_channels=[channels] * 4 + [stats_channels],
            tdnn_kernel_sizes=[5, 3, 3, 1, 1],
            tdnn_dilations=[1, 2, 3, 1, 1],
            lin_neurons=embed_dim,
        )
        self._reflect = ReflectAtEnds(self.model)

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        relative = None if lengths is None else lengths.float() / features.shape[1]
        with self._reflect.frames(lengths):  # each utterance padded from its own end
            return self.model(features, relative).squeeze(1)
