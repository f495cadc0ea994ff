"""ECAPA-TDNN as WeSpeaker builds it (its ``ECAPA_TDNN_GLOB_c512`` and siblings).

Desplanques et al., "ECAPA-TDNN: Emphasized Channel Attention, Propagation and Aggregation in TDNN
Based Speaker Verification", Interspeech 2020, https://arxiv.org/abs/2005.07143; WeSpeaker: Wang
et al. 2023, https://arxiv.org/abs/2210.17016. Its topology differs from SpeechBrain's module
(``EcapaTdnn``): no batch norm after the aggregation convolution (a ReLU only), a plain tanh
attention (no ReLU + batch norm inside), zero padding (not reflect), the Res2Net split's last
group passed through (not the first), Linear squeeze-excitation, and a 1536-channel aggregation
whatever the width.
"""

import torch
from torch import Tensor, nn

from speakerid.backbones.pooling import masked_mean, masked_tstp, time_mask


class ConvReluBn(nn.Module):
    """Conv1d (zero 'same' padding) -> ReLU -> batch norm: WeSpeaker's order, the norm last."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 1, dilation: int = 1) -> None:
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv1d(c_in, c_out, kernel_size, padding=padding, dilation=dilation)
        self.bn = nn.BatchNorm1d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(torch.relu(self.conv(x)))


class Res2Conv(nn.Module):
    """Res2Net's hierarchical split (Gao et al. 2019) of (B,C,T) into ``scale`` groups: group i
    (i < scale - 1) plus the previous group's output goes through a dilated kernel-3
    ConvReluBn; the last group passes unchanged."""

    def __init__(self, channels: int, scale: int, dilation: int) -> None:
        super().__init__()
        if channels % scale:
            raise ValueError(f"channels ({channels}) must divide into res2net_scale ({scale})")
        self.width = channels // scale
        self.branches = nn.ModuleList(
            ConvReluBn(self.width, self.width, 3, dilation) for _ in range(max(scale - 1, 1))
        )

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        groups = torch.split(x, self.width, dim=1)  # scale x (B,C/scale,T)
        keep = mask[:, None, :].to(x.dtype)  # (B,1,T)
        outs: list[Tensor] = []
        for group, branch in zip(groups, self.branches, strict=False):
            # zeroed padding: a kernel-3 conv then reads zeros past the end, as when alone
            outs.append(branch((group if not outs else group + outs[-1]) * keep))
        return torch.cat([*outs, *groups[len(outs) :]], dim=1)


class SqueezeExcite(nn.Module):
    """Channel gates (Hu et al. 2018) from the mean over real frames: Linear, ReLU, Linear,
    sigmoid."""

    def __init__(self, channels: int, bottleneck: int) -> None:
        super().__init__()
        self.down = nn.Linear(channels, bottleneck)
        self.up = nn.Linear(bottleneck, channels)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        gate = torch.sigmoid(self.up(torch.relu(self.down(masked_mean(x, mask)))))  # (B,C)
        return x * gate[..., None]


class SeRes2Block(nn.Module):
    """x + SE(ConvReluBn 1x1 -> Res2Conv -> ConvReluBn 1x1), width kept."""

    def __init__(self, channels: int, scale: int, dilation: int, se_channels: int) -> None:
        super().__init__()
        self.pre = ConvReluBn(channels, channels)
        self.res2 = Res2Conv(channels, scale, dilation)
        self.post = ConvReluBn(channels, channels)
        self.se = SqueezeExcite(channels, se_channels)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return x + self.se(self.post(self.res2(self.pre(x), mask)), mask)


class ContextAttentiveStats(nn.Module):
    """Attentive statistics pooling (Okabe et al. 2018), channel-wise, with ECAPA's global
    context: each frame's attention also sees the utterance's mean and standard deviation
    (sqrt(unbiased variance + 1e-7)); tanh hidden layer, softmax over real frames; -> weighted
    mean and sqrt(max(weighted E[x^2] - mean^2, 1e-7)), (B,C,T) -> (B,2C)."""

    def __init__(self, channels: int, bottleneck: int, global_context: bool) -> None:
        super().__init__()
        self.global_context = global_context
        self.attend = nn.Conv1d(channels * (3 if global_context else 1), bottleneck, 1)
        self.score = nn.Conv1d(bottleneck, channels, 1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        seen = x
        if self.global_context:
            context = masked_tstp(x, mask)[..., None].expand(-1, -1, x.shape[-1])  # (B,2C,T)
            seen = torch.cat([x, context], dim=1)  # x, mean, std
        logits = self.score(torch.tanh(self.attend(seen)))  # (B,C,T)
        alpha = logits.masked_fill(~mask[:, None, :], float("-inf")).softmax(dim=-1)
        mean = (alpha * x).sum(-1)
        var = (alpha * x**2).sum(-1) - mean**2
        return torch.cat([mean, var.clamp_min(1e-7).sqrt()], dim=1)


class EcapaWespeaker(nn.Module):
    """WeSpeaker's ECAPA-TDNN: a kernel-5 ConvReluBn, three SE-Res2Net blocks (dilations 2, 3,
    4), their outputs concatenated -> 1x1 aggregation conv -> ReLU -> attentive statistics
    pooling -> batch norm -> Linear ``embed_dim`` (-> batch norm with ``embedding_norm``).

    Desplanques et al. 2020 (https://arxiv.org/abs/2005.07143) as WeSpeaker (Wang et al. 2023,
    https://arxiv.org/abs/2210.17016) builds it; parity-tested against its code
    (tests/integration/test_parity_wespeaker.py). The YAMLs: ``ecapa_wespeaker``
    (ECAPA_TDNN_GLOB_c512, 6,190,720 parameters at 80 mels and 192-d, measured, as WeSpeaker's),
    ``ecapa_wespeaker_c512`` (5,797,504), ``ecapa_wespeaker_c1024`` (14,263,872),
    ``ecapa_wespeaker_glob_c1024`` (14,657,088).

    Padding: the squeeze-excitation means, the global context and the attention's softmax use
    real frames only, and padded frames are zeroed before every convolution wider than one
    frame, so in eval mode a padded utterance embeds as it does alone. Not exact in training:
    batch norm's batch statistics count the padded frames (WeSpeaker's code, which has no
    lengths, counts them everywhere).

    Args:
        num_mels: input feature size (F).
        channels: width C of the three SE-Res2Net blocks (512 or 1024 in WeSpeaker).
        embed_dim: embedding size (D).
        attention_channels: bottleneck of the attentive pooling.
        se_channels: bottleneck of the squeeze-excitation.
        res2net_scale: Res2Net groups per block.
        global_context: the attention sees the utterance's mean and std (WeSpeaker's GLOB).
        aggregation_channels: output of the aggregation conv (WeSpeaker: 1536 for every C).
        embedding_norm: batch norm on the embedding (WeSpeaker's ``emb_bn``).

    Example:
        >>> net = EcapaWespeaker(num_mels=40, channels=32, embed_dim=16, aggregation_channels=48)
        >>> net(torch.randn(2, 100, 40), torch.tensor([100, 60])).shape
        torch.Size([2, 16])
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
        aggregation_channels: int = 1536,
        embedding_norm: bool = False,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.stem = ConvReluBn(num_mels, channels, 5)
        self.blocks = nn.ModuleList(
            SeRes2Block(channels, res2net_scale, dilation, se_channels) for dilation in (2, 3, 4)
        )
        self.aggregate = nn.Conv1d(3 * channels, aggregation_channels, 1)
        self.pool = ContextAttentiveStats(aggregation_channels, attention_channels, global_context)
        self.pool_norm = nn.BatchNorm1d(2 * aggregation_channels)
        self.embedding = nn.Linear(2 * aggregation_channels, embed_dim)
        self.embedding_norm = nn.BatchNorm1d(embed_dim) if embedding_norm else nn.Identity()

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B,T,F) features and (B,) frame counts -> (B,D) embeddings."""
        b, t, _ = features.shape
        mask = time_mask(lengths, t, b, features.device)  # (B,T), no frame rate change
        x = self.stem(features.transpose(1, 2) * mask[:, None, :])  # (B,F,T) -> (B,C,T)
        outs = []
        for block in self.blocks:
            x = block(x, mask)
            outs.append(x)
        x = torch.relu(self.aggregate(torch.cat(outs, dim=1)))  # (B,3C,T) -> (B,1536,T)
        return self.embedding_norm(self.embedding(self.pool_norm(self.pool(x, mask))))
