"""CAM++ (Wang et al., "CAM++: A Fast and Efficient Network for Speaker Verification Using
Context-Aware Masking", Interspeech 2023, https://arxiv.org/abs/2303.00332): a 2-D convolutional
front (FCM) over the filterbank, then a densely connected TDNN whose layers are gated by
context-aware masks (utterance mean + 100-frame segment means), statistics pooling and a
512-d embedding. 7,176,224 parameters at the paper's size, as WeSpeaker's and 3D-Speaker's
``CAMPPlus`` (WeSpeaker's VoxCeleb table: 0.80 % EER on Vox1-O, 0.66 % with large-margin
fine-tuning and AS-norm; 3D-Speaker's: 0.65 %)."""

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from speakerid.backbones.pooling import time_mask

# The pooled variance's floor: it guards exact zeros only (a channel constant over an utterance,
# where 3D-Speaker's plain std has an infinite slope and NaN gradients), changing no other value.
VAR_FLOOR = 1e-20


def zero_padding(x: Tensor, mask: Tensor) -> Tensor:
    """Zero padded frames, so that a convolution across time reads zeros there, as it would
    past the end of a lone utterance. ``mask`` is (B,T) bool; ``x`` is (B,C,T) or (B,C,F,T)."""
    keep = mask[:, None, :] if x.ndim == 3 else mask[:, None, None, :]
    return x.masked_fill(~keep, 0.0)


def _ratio(frames: int, count: Tensor) -> Tensor:
    """frames / count, exactly 1 where they are equal (``int / Tensor`` multiplies by a
    rounded reciprocal)."""
    return torch.full_like(count, frames) / count


def stats_pool(x: Tensor, mask: Tensor, eps: float) -> Tensor:
    """Mean and unbiased standard deviation, sqrt(var + eps), over real frames: (B,C,T) ->
    (B,2C) — WeSpeaker's and 3D-Speaker's statistics pooling (``torch.var``'s n - 1).

    Written with ``mean`` and ``var`` over all frames, rescaled to the real ones, so that an
    unpadded input gives the references' values to the bit (padded frames are filled with the
    mean, where they add nothing to the variance)."""
    frames = x.shape[-1]
    real = mask[:, None, :]  # (B,1,T)
    count = real.sum(-1).to(x.dtype)  # (B,1)
    mean = (x * real).mean(-1) * _ratio(frames, count)
    filled = torch.where(real, x, mean[..., None])
    var = filled.var(-1, correction=int(frames > 1)) * _ratio(frames - 1, (count - 1).clamp_min(1))
    std = (var + eps).clamp_min(VAR_FLOOR).sqrt()
    return torch.cat([mean, std], dim=1)


class FcmBlock(nn.Module):
    """A ResNet basic block striding frequency only: (B,C,F,T) -> (B,C',F/stride,T). Padded
    frames are zeroed before each 3x3 convolution, so a padded utterance's real frames are
    computed as if it were alone."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, (stride, 1), 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:  # a 1x1 projection: no context across time
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, (stride, 1), bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(zero_padding(x, mask))))
        out = self.bn2(self.conv2(zero_padding(out, mask)))
        return torch.relu(out + self.shortcut(x))


def _fcm_stage(channels: int, blocks: int) -> nn.ModuleList:
    """``blocks`` basic blocks, the first halving frequency."""
    return nn.ModuleList(
        [FcmBlock(channels, channels, 2)]
        + [FcmBlock(channels, channels) for _ in range(blocks - 1)]
    )


class FCM(nn.Module):
    """The 2-D front: conv, two stages of ``blocks`` basic blocks (the first of each halving
    frequency), a frequency-strided conv: (B,F,T) -> (B, channels * ceil(F/8), T)."""

    def __init__(self, num_mels: int = 80, channels: int = 32, blocks: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = _fcm_stage(channels, blocks)
        self.layer2 = _fcm_stage(channels, blocks)
        self.conv2 = nn.Conv2d(channels, channels, 3, (2, 1), 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        # three stride-2 convolutions (kernel 3, padding 1): ceil(F/2) each time
        self.out_channels = channels * -(-num_mels // 8)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(zero_padding(x.unsqueeze(1), mask))))
        for block in (*self.layer1, *self.layer2):
            out = block(out, mask)
        out = torch.relu(self.bn2(self.conv2(zero_padding(out, mask))))
        return out.flatten(1, 2)  # (B,C,F/8,T) -> (B, C*F/8, T)


def segment_context(x: Tensor, mask: Tensor, segment: int) -> Tensor:
    """The context of the CAM mask: the utterance mean plus the mean of the frame's
    ``segment``-frame segment (the last one shorter), both over real frames: (B,C,T) -> (B,C,T).

    Means over all frames of the zero-padded input, divided by the real frames' share, so that
    an unpadded input gives the references' values to the bit."""
    frames = x.shape[-1]
    real = mask[:, None, :].to(x.dtype)  # (B,1,T)
    padded = x * real
    utterance = padded.mean(-1, keepdim=True) * _ratio(frames, real.sum(-1, keepdim=True))
    share = nn.functional.avg_pool1d(real, segment, segment, ceil_mode=True)  # (B,1,segments)
    # a share is 0 (a segment of padding only: its sum is 0 too) or at least 1 / segment
    means = nn.functional.avg_pool1d(padded, segment, segment, ceil_mode=True)
    means = means / share.clamp_min(1 / segment)
    return utterance + means.repeat_interleave(segment, dim=-1)[..., :frames]


class CamLayer(nn.Module):
    """A dilated convolution gated by a context-aware mask: the sigmoid of a bottleneck of the
    utterance mean plus the frame's segment mean: (B,C,T) -> (B,C',T)."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, dilation: int, segment: int, reduction: int = 2
    ) -> None:
        super().__init__()
        padding = (kernel - 1) // 2 * dilation
        self.local = nn.Conv1d(c_in, c_out, kernel, padding=padding, dilation=dilation, bias=False)
        self.squeeze = nn.Conv1d(c_in, c_in // reduction, 1)
        self.excite = nn.Conv1d(c_in // reduction, c_out, 1)
        self.segment = segment

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        context = torch.relu(self.squeeze(segment_context(x, mask, self.segment)))
        return self.local(zero_padding(x, mask)) * torch.sigmoid(self.excite(context))


class CamDenseLayer(nn.Module):
    """BN-ReLU, 1x1 bottleneck, BN-ReLU, CAM layer: ``growth`` new channels. With
    ``checkpointing`` the first BN-ReLU-1x1 (on the block's widest input) is recomputed in the
    backward pass instead of stored, as 3D-Speaker's ``memory_efficient`` does."""

    def __init__(
        self,
        c_in: int,
        growth: int,
        bottleneck: int,
        kernel: int,
        dilation: int,
        segment: int,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.norm_in = nn.BatchNorm1d(c_in)
        self.bottleneck = nn.Conv1d(c_in, bottleneck, 1, bias=False)
        self.norm_mid = nn.BatchNorm1d(bottleneck)
        self.cam = CamLayer(bottleneck, growth, kernel, dilation, segment)
        self.checkpointing = checkpointing

    def _bottleneck(self, x: Tensor) -> Tensor:
        return self.bottleneck(torch.relu(self.norm_in(x)))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        if self.checkpointing and self.training and torch.is_grad_enabled():
            out = checkpoint(self._bottleneck, x, use_reentrant=False)
        else:
            out = self._bottleneck(x)
        return self.cam(torch.relu(self.norm_mid(out)), mask)


class CamDenseBlock(nn.ModuleList):
    """Densely connected CAM layers: each sees the concatenation of all before it;
    (B,C,T) -> (B, C + layers * growth, T)."""

    def __init__(
        self,
        layers: int,
        c_in: int,
        growth: int,
        bottleneck: int,
        kernel: int,
        dilation: int,
        segment: int,
        checkpointing: bool,
    ) -> None:
        super().__init__(
            CamDenseLayer(
                c_in + i * growth, growth, bottleneck, kernel, dilation, segment, checkpointing
            )
            for i in range(layers)
        )

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        for layer in self:
            x = torch.cat([x, layer(x, mask)], dim=1)
        return x


def _bn_relu_conv(c_in: int, c_out: int) -> nn.Sequential:
    """The transition after a dense block: BN-ReLU, then a 1x1 convolution."""
    return nn.Sequential(nn.BatchNorm1d(c_in), nn.ReLU(), nn.Conv1d(c_in, c_out, 1, bias=False))


class CamPlusPlus(nn.Module):
    """CAM++ (Wang et al. 2023) under the Backbone contract: ``(B,T,F), (B,) frames -> (B,D)``.

    The same network as WeSpeaker's and 3D-Speaker's ``CAMPPlus`` (their weights load through
    ``speakerid.pretrained.campplus_keys``; equal outputs are tested). The two differ in
    ``std_eps`` (WeSpeaker's pooling: sqrt(var + 1e-7); 3D-Speaker's: the plain standard
    deviation) and 3D-Speaker's gradient ``checkpointing`` (``memory_efficient``), which
    changes no value.

    Lengths: every convolution across time reads zeros at padded frames and the CAM contexts
    and the pooling take real frames only, so in eval mode a padded utterance's embedding is
    that of the utterance alone (tested). Not exact in training mode: batch norm's batch
    statistics include padded frames.

    Args:
        num_mels: filterbank channels (F).
        embed_dim: embedding size (D; 512 for VoxCeleb, 3D-Speaker's zh-cn model 192).
        fcm_channels: channels of the 2-D front.
        init_channels: the TDNN layer's width (stride 2 in time).
        growth: channels each dense layer adds; ``bottleneck`` is its 1x1 width (4 x growth).
        layers, kernels, dilations: the three dense blocks; each is followed by a 1x1 transition
            that halves the channels.
        segment: frames of the CAM layer's segment means (at the TDNN's half frame rate).
        std_eps: added to the pooled variance under the square root.
        checkpointing: recompute each dense layer's first 1x1 in the backward pass (memory);
            like 3D-Speaker's, the recomputation updates its batch norm's running statistics a
            second time (``torch.utils.checkpoint``).

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
        segment: int = 100,
        std_eps: float = 1e-7,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.std_eps = std_eps
        bottleneck = bottleneck or 4 * growth
        self.head = FCM(num_mels, fcm_channels)
        self.tdnn = nn.Conv1d(self.head.out_channels, init_channels, 5, 2, 2, bias=False)
        self.tdnn_norm = nn.BatchNorm1d(init_channels)
        self.blocks, self.transits = nn.ModuleList(), nn.ModuleList()
        channels = init_channels
        for n, kernel, dilation in zip(layers, kernels, dilations, strict=True):
            self.blocks.append(
                CamDenseBlock(
                    n, channels, growth, bottleneck, kernel, dilation, segment, checkpointing
                )
            )
            channels += n * growth
            self.transits.append(_bn_relu_conv(channels, channels // 2))
            channels //= 2
        self.out_norm = nn.BatchNorm1d(channels)
        self.dense = nn.Conv1d(2 * channels, embed_dim, 1, bias=False)
        self.dense_norm = nn.BatchNorm1d(embed_dim, affine=False)
        for module in self.modules():
            if isinstance(module, nn.Conv1d):
                nn.init.kaiming_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        mask = time_mask(lengths, features.shape[1], features.shape[0], features.device)
        x = self.head(features.transpose(1, 2), mask)  # (B,T,F) -> (B, C*F/8, T)
        x = torch.relu(self.tdnn_norm(self.tdnn(zero_padding(x, mask))))  # (B,C,ceil(T/2))
        mask = mask[:, ::2]  # the stride-2 TDNN keeps frames 0, 2, ...: ceil(length/2) real
        for block, transit in zip(self.blocks, self.transits, strict=True):
            x = transit(block(x, mask))
        stats = stats_pool(torch.relu(self.out_norm(x)), mask, self.std_eps)  # (B,2C)
        return self.dense_norm(self.dense(stats.unsqueeze(-1))).squeeze(-1)
