"""ECAPA-TDNN (Desplanques et al., 2020), speechbrain's implementation behind our contract."""

from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
from torch import Tensor, nn

from speakerid.backbones.reflect_padding import ReflectAtEnds


class EcapaTdnn(nn.Module):
    """ECAPA-TDNN: SE-Res2Net TDNN blocks, multi-layer aggregation, attentive statistics pooling.

    "ECAPA-TDNN: Emphasized Channel Attention, Propagation and Aggregation in TDNN Based Speaker
    Verification", https://arxiv.org/abs/2005.07143. The paper's models use ``channels`` 512 or
    1024 and ``embed_dim`` 192.

    Args:
        num_mels: input feature size (F).
        channels: width C of the four TDNN blocks; the aggregation layer has 3C.
        embed_dim: embedding size (D).
        attention_channels: bottleneck of the attentive pooling.
        se_channels: bottleneck of the squeeze-excitation blocks.
        res2net_scale: Res2Net splits per block.
        global_context: pooling attention also sees the utterance's mean and std.

    Example:
        >>> net = EcapaTdnn(num_mels=80, channels=64, embed_dim=32)
        >>> net(torch.randn(2, 150, 80), torch.tensor([150, 100])).shape
        torch.Size([2, 32])
    """

    def __init__(
        self,
        num_mels: int = 80,
        channels: int = 512,
        embed_dim: int = 192,
        attention_channels: int = 128,
        se_channels: int = 128,
        res2net_scale: int = 8,
        global_context: bool = True,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.model = ECAPA_TDNN(
            input_size=num_mels,
            lin_neurons=embed_dim,
            channels=[channels] * 4 + [3 * channels],
            attention_channels=attention_channels,
            se_channels=se_channels,
            res2net_scale=res2net_scale,
            global_context=global_context,
        )
        self._reflect = ReflectAtEnds(self.model)

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B,T,F) features and (B,) frame counts -> (B,D) embeddings."""
        relative = None if lengths is None else lengths.float() / features.shape[1]
        with self._reflect.frames(lengths):  # each utterance padded from its own end
            return self.model(features, relative).squeeze(1)  # (B,1,D) -> (B,D)
