"""CAM++ (Wang et al., "CAM++: A Fast and Efficient Network for Speaker Verification Using
Context-Aware Masking", Interspeech 2023, https://arxiv.org/abs/2303.00332): a 2-D convolutional
front (FCM) over the filterbank, then a densely connected TDNN whose layers are gated by
context-aware masks (utterance mean + 100-frame segment means), statistics pooling and a
512-d embedding. 7.18 M parameters at the paper's size (WeSpeaker's VoxCeleb table: 0.80 % EER
on Vox1-O, 0.66 % with large-margin fine-tuning and AS-norm)."""

import torch
from torch import Tensor, nn

from speakerid.backbones.pooling import masked_stats, time_mask
from speakerid.backbones.resnet import BasicBlock


def _bn_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm1d(channels), nn.ReLU(inplace=True))


class FCM(nn.Module):
    """The 2-D front: conv, two stages of two frequency-strided basic blocks, a final
    frequency-strided conv: (B,F,T) -> (B, channels * F/8, T)."""

    def __init__(self, num_mels: int = 80, channels: int = 32, blocks: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        # ResNet basic blocks striding the frequency axis only
        self.layer1 = nn.Sequential(
            BasicBlock(channels, channels, (2, 1)),
            *[BasicBlock(channels, channels) for _ in range(blocks - 1)],
        )
        self.layer2 = nn.Sequential(
            BasicBlock(channels, channels, (2, 1)),
            *[BasicBlock(channels, channels) for _ in range(blocks - 1)],
        )
        self.conv2 = nn.Conv2d(channels, channels, 3, (2, 1), 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.out_channels = channels * ((num_mels + 7) // 8)

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        out = self.layer2(self.layer1(out))
        out = torch.relu(self.bn2(self.conv2(out)))
        return out.flatten(1, 2)


class CamLayer(nn.Module):
    """A dilated convolution gated by a context-aware mask: sigmoid of a bottleneck of the
    utterance-level mean plus the mean of the frame's ``segment``-frame segment."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        dilation: int,
        reduction: int = 2,
        segment: int = 100,
    ) -> None:
        super().__init__()
        padding = (kernel - 1) // 2 * dilation
        self.linear_local = nn.Conv1d(
            c_in, c_out, kernel, padding=padding, dilation=dilation, bias=False
        )
        self.linear1 = nn.Conv1d(c_in, c_in // reduction, 1)
        self.linear2 = nn.Conv1d(c_in // reduction, c_out, 1)
        self.segment = segment

    def forward(self, x: Tensor) -> Tensor:
        frames = x.shape[-1]
        seg = nn.functional.avg_pool1d(x, self.segment, self.segment, ceil_mode=True)
        seg = seg.repeat_interleave(self.segment, dim=-1)[..., :frames]
        context = torch.relu(self.linear1(x.mean(-1, keepdim=True) + seg))
        return self.linear_local(x) * torch.sigmoid(self.linear2(context))


class CamDenseLayer(nn.Module):
    """BN-ReLU, 1x1 bottleneck, BN-ReLU, CAM layer: ``growth`` new channels."""

    def __init__(self, c_in: int, growth: int, bottleneck: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.nonlinear1 = _bn_relu(c_in)
        self.linear1 = nn.Conv1d(c_in, bottleneck, 1, bias=False)
        self.nonlinear2 = _bn_relu(bottleneck)
        self.cam_layer = CamLayer(bottleneck, growth, kernel, dilation)

    def forward(self, x: Tensor) -> Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class CamDenseBlock(nn.ModuleList):
    """Densely connected CAM layers: each sees the concatenation of all before it."""

    def __init__(
        self, layers: int, c_in: int, growth: int, bottleneck: int, kernel: int, dilation: int
    ):
        super().__init__(
            CamDenseLayer(c_in + i * growth, growth, bottleneck, kernel, dilation)
            for i in range(layers)
        )

    def forward(self, x: Tensor) -> Tensor:
        for layer in self:
            x = torch.cat([x, layer(x)], dim=1)
        return x


class CamPlusPlus(nn.Module):
    """CAM++ under the Backbone contract: ``(B,T,F), (B,) frames -> (B,D)``.

    Args:
        num_mels: filterbank channels (F).
        embed_dim: embedding size (D; the paper's 512).
        fcm_channels: channels of the 2-D front.
        init_channels: the TDNN layer's width (stride 2 in time).
        growth: channels each dense layer adds; ``bottleneck`` is its 1x1 width (4 x growth).
        layers, kernels, dilations: the three dense blocks; each is followed by a 1x1 transition
            that halves the channels.

    Example:
        >>> net = CamPlusPlus(24, embed_dim=16, init_channels=16, growth=8, layers=(2, 2, 2))
        >>> net(torch.randn(2, 50, 24), torch.tensor([50, 30])).shape
        torch.Size([2, 16])
    """

    def __init__(
        self,
        num_mels: int = 80,
        embed_dim: int = 512,
        fcm_channels: int = 32,
        init_channels: int = 128,
        growth: int = 32,
        bottleneck: int | None = None,
        layers: tuple[int, ...] | list[int] = (12, 24, 16),
        kernels: tuple[int, ...] | list[int] = (3, 3, 3),
        dilations: tuple[int, ...] | list[int] = (1, 2, 2),
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        bottleneck = bottleneck or 4 * growth
        self.head = FCM(num_mels, fcm_channels)
        stages: list[nn.Module] = [
            nn.Conv1d(self.head.out_channels, init_channels, 5, stride=2, padding=2, bias=False),
            _bn_relu(init_channels),
        ]
        channels = init_channels
        for n, kernel, dilation in zip(layers, kernels, dilations, strict=True):
            stages.append(CamDenseBlock(n, channels, growth, bottleneck, kernel, dilation))
            channels += n * growth
            stages += [_bn_relu(channels), nn.Conv1d(channels, channels // 2, 1, bias=False)]
            channels //= 2
        stages.append(_bn_relu(channels))
        self.xvector = nn.Sequential(*stages)
        self.dense = nn.Conv1d(2 * channels, embed_dim, 1, bias=False)
        self.dense_norm = nn.BatchNorm1d(embed_dim, affine=False)
        for module in self.modules():
            if isinstance(module, nn.Conv1d | nn.Linear):
                nn.init.kaiming_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        x = self.xvector(self.head(features.transpose(1, 2)))  # (B,C,ceil(T/2))
        if lengths is not None:
            lengths = torch.div(lengths + 1, 2, rounding_mode="floor")  # the stride-2 TDNN
        mask = time_mask(lengths, x.shape[-1], x.shape[0], x.device)
        stats = masked_stats(x, mask)
        return self.dense_norm(self.dense(stats.unsqueeze(-1))).squeeze(-1)
