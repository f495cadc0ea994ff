"""ERes2NetV2 (Chen et al., "ERes2NetV2: Boosting Short-Duration Speaker Verification
Performance with Computational Efficiency", Interspeech 2024, https://arxiv.org/abs/2406.02167):
a ResNet-34 layout of Res2Net blocks over the filterbank image, widened within each block and
pruned back (a 1x1 expansion, two 3x3 groups); attentional feature fusion (AFF) between a
block's groups in the last two stages and between the last two stages; statistics pooling and a
192-d embedding. 17,859,632 parameters at 3D-Speaker's size (its VoxCeleb recipe: 0.61 % EER on
Vox1-O with large-margin fine-tuning)."""

import torch
from torch import Tensor, nn

from speakerid.backbones.campplus import stats_pool, zero_padding
from speakerid.backbones.pooling import time_mask


def clipped_relu(x: Tensor) -> Tensor:
    """min(max(x, 0), 20): 3D-Speaker's ``ReLU`` inside the blocks (a ``Hardtanh``)."""
    return nn.functional.hardtanh(x, 0.0, 20.0)


class Aff(nn.Module):
    """Attentional feature fusion (Dai et al. 2021, as ERes2Net uses it): a 1x1 bottleneck over
    both inputs gives weights w in (0, 2) per element; the fusion is x * w + y * (2 - w).
    (B,C,F,T) twice -> (B,C,F,T).

    Example:
        >>> Aff(8)(torch.randn(2, 8, 5, 7), torch.randn(2, 8, 5, 7)).shape
        torch.Size([2, 8, 5, 7])
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        inner = channels // reduction
        self.squeeze = nn.Conv2d(2 * channels, inner, 1)
        self.squeeze_norm = nn.BatchNorm2d(inner)
        self.excite = nn.Conv2d(inner, channels, 1)
        self.excite_norm = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        hidden = nn.functional.silu(self.squeeze_norm(self.squeeze(torch.cat([x, y], dim=1))))
        weight = 1.0 + torch.tanh(self.excite_norm(self.excite(hidden)))
        return x * weight + y * (2.0 - weight)


class Res2Block(nn.Module):
    """An ERes2NetV2 block: a (strided) 1x1 convolution to ``scale`` groups of ``width``
    channels; group i's 3x3 convolution reads group i plus group i-1's output (fused by AFF
    when ``fuse``); a 1x1 convolution to ``planes * expansion``; a (projected) shortcut.
    (B,C,F,T) -> (B, planes * expansion, F/stride, T/stride).
    """

    def __init__(
        self,
        c_in: int,
        planes: int,
        stride: int,
        base_width: int,
        scale: int,
        expansion: int,
        fuse: bool,
    ) -> None:
        super().__init__()
        self.width = planes * base_width // 64
        c_out = planes * expansion
        self.reduce = nn.Conv2d(c_in, self.width * scale, 1, stride, bias=False)
        self.reduce_norm = nn.BatchNorm2d(self.width * scale)
        self.convs = nn.ModuleList(
            nn.Conv2d(self.width, self.width, 3, 1, 1, bias=False) for _ in range(scale)
        )
        self.norms = nn.ModuleList(nn.BatchNorm2d(self.width) for _ in range(scale))
        self.fusions = nn.ModuleList(Aff(self.width) for _ in range(scale - 1) if fuse)
        self.expand = nn.Conv2d(self.width * scale, c_out, 1, bias=False)
        self.expand_norm = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:  # 1x1: no context across time
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``mask``: (B,T') real frames at the block's output rate."""
        groups = clipped_relu(self.reduce_norm(self.reduce(x))).split(self.width, dim=1)
        outs: list[Tensor] = []
        for i, (group, conv, norm) in enumerate(zip(groups, self.convs, self.norms, strict=True)):
            if i > 0:  # the previous group's output joins this group's input
                group = self.fusions[i - 1](outs[-1], group) if self.fusions else outs[-1] + group
            outs.append(clipped_relu(norm(conv(zero_padding(group, mask)))))
        out = self.expand_norm(self.expand(torch.cat(outs, dim=1)))
        return clipped_relu(out + self.shortcut(x))


class ERes2NetV2(nn.Module):
    """ERes2NetV2 (Chen et al. 2024) under the Backbone contract: ``(B,T,F), (B,) frames ->
    (B,D)``.

    The same network as 3D-Speaker's ``ERes2NetV2`` (its weights load through
    ``speakerid.pretrained.eres2net_keys``; equal outputs are tested): a 3x3 stem, stages of
    ``depths`` blocks (``channels`` x 1, 2, 4, 8 planes; each stage after the first halves
    frequency and time), AFF within the last two stages' blocks, the third stage's output
    downsampled (3x3, stride 2) and fused with the last's by AFF, statistics pooling over time
    of every channel and frequency, one linear layer.

    Lengths: every 3x3 convolution reads zeros at padded frames and the pooling takes real
    frames only (``ceil(length / 8)`` after three halvings), so in eval mode a padded
    utterance's embedding is that of the utterance alone (tested). Not exact in training
    mode: batch norm's batch statistics include padded frames.

    Args:
        num_mels: filterbank channels (F).
        embed_dim: embedding size (D; 3D-Speaker's 192).
        channels: the first stage's planes (3D-Speaker's ``m_channels``).
        depths: blocks per stage.
        base_width: a block's group width per 64 planes (``baseWidth``).
        scale: groups per block.
        expansion: a block's output channels per plane.
        std_eps: added to the pooled variance under the square root.

    Example:
        >>> net = ERes2NetV2(16, embed_dim=8, channels=4, depths=(1, 1, 1, 1))
        >>> net(torch.randn(2, 50, 16), torch.tensor([50, 30])).shape
        torch.Size([2, 8])
    """

    def __init__(
        self,
        num_mels: int = 80,
        embed_dim: int = 192,
        channels: int = 64,
        depths: tuple[int, ...] | list[int] = (3, 4, 6, 3),
        base_width: int = 26,
        scale: int = 2,
        expansion: int = 2,
        std_eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.std_eps = std_eps
        self.conv = nn.Conv2d(1, channels, 3, 1, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        self.stages = nn.ModuleList()
        c_in, last = channels, len(depths) - 1
        for i, depth in enumerate(depths):
            planes, fuse = channels * 2**i, i >= last - 1  # AFF in the last two stages
            stage = [Res2Block(c_in, planes, 2 if i else 1, base_width, scale, expansion, fuse)]
            c_in = planes * expansion
            stage += [
                Res2Block(c_in, planes, 1, base_width, scale, expansion, fuse)
                for _ in range(depth - 1)
            ]
            self.stages.append(nn.ModuleList(stage))
        penultimate = channels * 2 ** (last - 1) * expansion
        self.downsample = nn.Conv2d(penultimate, c_in, 3, 2, 1, bias=False)
        self.fuse = Aff(c_in)
        frequencies = -(-num_mels // 2**last)  # ceil(F/2) at each strided stage
        self.embedding = nn.Linear(2 * c_in * frequencies, embed_dim)

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        mask = time_mask(lengths, features.shape[1], features.shape[0], features.device)
        image = zero_padding(features.transpose(1, 2).unsqueeze(1), mask)  # (B,1,F,T)
        x = torch.relu(self.norm(self.conv(image)))
        masks = [mask]
        for _ in self.stages[1:]:  # a strided stage keeps frames 0, 2, ...: ceil(length/2) real
            masks.append(masks[-1][:, ::2])
        outputs = []
        for stage, mask in zip(self.stages, masks, strict=True):
            for block in stage:
                x = block(x, mask)
            outputs.append(x)
        # the penultimate stage's output at the last's rate, fused with it: (B,C,F/8,T/8)
        downsampled = self.downsample(zero_padding(outputs[-2], masks[-2]))
        x = self.fuse(outputs[-1], downsampled)
        return self.embedding(stats_pool(x.flatten(1, 2), masks[-1], self.std_eps))
