"""ReDimNet2 (WeSpeaker's ``ReDimNet2B0`` .. ``B6``): 2-D residual stages and 1-D time-context
blocks over one feature map reshaped between (C, F) and C*F channels.

Yakovlev et al., "Reshape Dimensions Network for Speaker Recognition", Interspeech 2024,
https://arxiv.org/abs/2407.18223; version 2 as WeSpeaker ships it (``models/redimnet2.py``, from
PalabraAI/redimnet2): the stem's map and every stage's output are kept as (B, C*F, T) at full
frame rate; each stage mixes all earlier ones with learned per-channel softmax weights, reshapes
to 2-D, downsamples frequency and time with one strided convolution, runs depthwise residual
blocks, reshapes back to C*F channels (C*F is constant: channels grow as frequency shrinks), runs
a time-context block (ConvNeXt-like 1-D convolutions and a 4-head self-attention at reduced width)
and repeats frames back to the full rate. A last mix of all maps, a 1x1 head, attentive statistics
pooling with global context, batch norm and a linear embedding.

WeSpeaker's ReDimNet2 takes its own front end (``features=tfmel``: 72 TensorFlow-style log mels),
not the Kaldi fbank; parity: tests/integration/test_parity_redimnet.py.
"""

import math

import torch
from torch import Tensor, nn

from speakerid.backbones.ecapa_wespeaker import ContextAttentiveStats
from speakerid.backbones.pooling import time_mask
from speakerid.errors import ConfigError


def zero_pad(x: Tensor, keep: Tensor | None) -> Tensor:
    """Zero the padded frames of (B,C,T) or (B,C,F,T) with a (B,T) 0/1 mask (None: keep all),
    so that the next convolution reads zeros past each utterance's end, as when it is alone."""
    if keep is None:
        return x
    return x * keep.view(keep.shape[0], *([1] * (x.ndim - 2)), keep.shape[1])


def to_2d(x: Tensor, channels: int) -> Tensor:
    """(B, F*C, T), frequency-major, -> (B, C, F, T)."""
    batch, width, frames = x.shape
    return x.view(batch, width // channels, channels, frames).transpose(1, 2)


def to_1d(x: Tensor) -> Tensor:
    """(B, C, F, T) -> (B, F*C, T), frequency-major (the inverse of :func:`to_2d`)."""
    return x.transpose(1, 2).flatten(1, 2)


class ChannelNorm(nn.Module):
    """Layer norm over the channels of each frame (and bin): (B,C,...) -> (B,C,...)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # written out (not F.layer_norm on moved axes) to round as WeSpeaker's does: batch norm
        # in training mode amplifies 1e-7 differences stage after stage
        mean = x.mean(1, keepdim=True)
        var = (x - mean).square().mean(1, keepdim=True)
        normed = (x - mean) / (var + self.eps).sqrt()
        shape = (1, -1) + (1,) * (x.ndim - 2)  # (1,C,1,...)
        return self.weight.view(shape) * normed + self.bias.view(shape)


class LayerMix(nn.Module):
    """A softmax-weighted sum of ``n`` (B,W,T) maps, weights per map and channel (zeros at
    start: the plain mean); a single map is passed through (its weight is frozen at 1)."""

    def __init__(self, n: int, width: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(1, n, width, 1), requires_grad=n > 1)

    def forward(self, maps: list[Tensor]) -> Tensor:
        weights = self.logits.softmax(dim=1)  # (1,N,W,1)
        return (weights * torch.stack(maps, dim=1)).sum(dim=1)


class ResBlock2d(nn.Module):
    """Depthwise-separable residual block: (3x3 depthwise, 1x1) -> ReLU -> BN -> (3x3
    depthwise, 1x1) -> BN, plus the input, ReLU: (B,C,F,T) -> (B,C,F,T)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dw1 = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.pw1 = nn.Conv2d(channels, channels, 1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.dw2 = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.pw2 = nn.Conv2d(channels, channels, 1)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor, keep: Tensor | None = None) -> Tensor:
        out = self.bn1(torch.relu(self.pw1(self.dw1(x))))  # ReLU before the norm, as WeSpeaker
        out = self.bn2(self.pw2(self.dw2(zero_pad(out, keep))))
        return zero_pad(torch.relu(out + x), keep)


class ConvNeXt1d(nn.Module):
    """Depthwise conv (``kernel`` frames) -> BN -> GELU -> 1x1, plus the input: (B,H,T)."""

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.dw = nn.Conv1d(channels, channels, kernel, padding=kernel // 2, groups=channels)
        self.norm = nn.BatchNorm1d(channels)
        self.pw = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor, keep: Tensor | None = None) -> Tensor:
        return zero_pad(x + self.pw(nn.functional.gelu(self.norm(self.dw(x)))), keep)


def gelu_tanh(x: Tensor) -> Tensor:
    """GELU's tanh approximation (Hendrycks & Gimpel 2016), written out as WeSpeaker's
    ``gelu_new`` is: ``F.gelu(approximate="tanh")`` rounds differently, and batch norm in
    training mode amplifies that stage after stage."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3.0))))


class Attention(nn.Module):
    """Post-norm transformer layer: self-attention (padded frames never attended to), add,
    layer norm, feed-forward (width H, :func:`gelu_tanh`), add, layer norm: (B,H,T)."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = (nn.Linear(channels, channels) for _ in range(4))
        self.norm1 = nn.LayerNorm(channels, eps=1e-6)
        self.ff1 = nn.Linear(channels, channels)
        self.ff2 = nn.Linear(channels, channels)
        self.norm2 = nn.LayerNorm(channels, eps=1e-6)

    def _attend(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """(B,T,H) -> (B,T,H); queries scaled before the product, as WeSpeaker's."""
        batch, frames, width = x.shape
        scale = (width // self.heads) ** -0.5
        q, k, v = (
            t.view(batch, frames, self.heads, -1).transpose(1, 2)  # (B,heads,T,H/heads)
            for t in (self.q(x) * scale, self.k(x), self.v(x))
        )
        scores = q @ k.transpose(-1, -2)  # (B,heads,T,T)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        context = scores.softmax(dim=-1) @ v
        return self.out(context.transpose(1, 2).reshape(batch, frames, width))

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        x = x.transpose(1, 2)  # (B,T,H)
        x = self.norm1(x + self._attend(x, mask))
        x = self.norm2(x + self.ff2(gelu_tanh(self.ff1(x))))
        return x.transpose(1, 2)


class TimeContext(nn.Module):
    """1-D time context at reduced width: 1x1 to ``hidden`` + channel norm, ConvNeXt-like
    blocks of growing kernels, attention, 1x1 back, plus the input: (B,W,T) -> (B,W,T)."""

    def __init__(self, width: int, hidden: int, kernels: tuple[int, ...], heads: int) -> None:
        super().__init__()
        self.reduce = nn.Conv1d(width, hidden, 1)
        self.reduce_norm = ChannelNorm(hidden)
        self.convs = nn.Sequential(*(ConvNeXt1d(hidden, k) for k in kernels))
        self.attention = Attention(hidden, heads)
        self.expand = nn.Conv1d(hidden, width, 1)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        keep = None if mask is None else mask.to(x.dtype)
        out = zero_pad(self.reduce_norm(self.reduce(x)), keep)
        for conv in self.convs:
            out = conv(out, keep)
        return zero_pad(x + self.expand(self.attention(out, mask)), keep)


class Stage(nn.Module):
    """One ReDimNet stage over the maps so far (each (B, C*F, T)) -> (B, C*F, T).

    Mix, reshape to (c_in, f_in), a (freq_stride, time_stride)-strided convolution (grouped by
    gcd) to ``expansion`` x the stage's channels (``c_in * freq_stride``), ``blocks`` residual
    blocks, a 1x1 + BN back to the stage's channels when expanded, reshape to C*F, time
    context, frames repeated ``time_stride`` times. ``time_stride`` is the product of this and
    the earlier stages' time strides: every stage reads maps at the full frame rate.
    """

    def __init__(
        self,
        inputs: int,
        width: int,
        c_in: int,
        freq_stride: int,
        time_stride: int,
        blocks: int,
        expansion: float,
        context: TimeContext | None,
    ) -> None:
        super().__init__()
        self.c_in, self.time_stride = c_in, time_stride
        channels = c_in * freq_stride
        wide = int(channels * expansion)
        self.mix = LayerMix(inputs, width)
        stride = (freq_stride, time_stride)
        self.down = nn.Conv2d(c_in, wide, stride, stride, groups=math.gcd(c_in, wide))
        self.blocks = nn.Sequential(*(ResBlock2d(wide) for _ in range(blocks)))
        self.shrink = None
        if wide != channels:
            self.shrink = nn.Sequential(
                nn.Conv2d(wide, channels, 1), nn.BatchNorm2d(channels, eps=1e-6)
            )
        self.context = context

    def forward(self, maps: list[Tensor], lengths: Tensor | None) -> Tensor:
        """Maps at the full rate (padded frames zero) and the frame counts, multiples of every
        time stride (or None) -> this stage's map at the full rate, padded frames zero."""
        x = self.down(to_2d(self.mix(maps), self.c_in))  # (B,c',f',T/st)
        mask = None
        if lengths is not None:  # the strided frames of each utterance: no straddling
            mask = time_mask(lengths // self.time_stride, x.shape[-1], x.shape[0], x.device)
        keep = None if mask is None else mask.to(x.dtype)
        x = zero_pad(x, keep)
        for block in self.blocks:
            x = block(x, keep)
        if self.shrink is not None:
            x = zero_pad(self.shrink(x), keep)
        x = to_1d(x)  # (B,C*F,T/st)
        if self.context is not None:
            x = self.context(x, mask)
        return x.repeat_interleave(self.time_stride, dim=-1)  # nearest upsampling


class ReDimNet2(nn.Module):
    """ReDimNet2 under the Backbone contract: ``(B,T,F), (B,) frames -> (B,D)``.

    Stage ``i`` strides frequency by ``freq_strides[i]`` and time by ``time_strides[i]`` (both
    cumulative: each stage reads maps at the full frame rate and downsamples by the product of
    the time strides so far), widens to ``expansions[i]`` x its channels for ``blocks[i]``
    residual blocks, and has a time-context block of width ``C*F / attention_reductions[i]``
    (none where null). ``out_channels`` is the head's width: a 1x1 Conv2d per frequency bin when
    ``head_2d`` (B6), else a 1x1 Conv1d over the C*F channels (null: no head).

    With ``num_mels`` = 72 (WeSpeaker's released models) the layers are WeSpeaker's, weight for
    weight (:mod:`speakerid.pretrained.redimnet_keys`). Other sizes, so that any front end
    fits: the bins are zero-padded at the top to a multiple of the frequency strides' product,
    and each time-context width is rounded down to a multiple of ``heads`` (WeSpeaker asserts).
    WeSpeaker's stage tuples also carry 2-D kernel sizes, which its residual blocks ignore.

    Padding: the frames are cut to a multiple of the time strides' product (WeSpeaker's rule;
    fewer frames than that are zero-padded to it), per utterance with ``lengths``; every map a
    convolution reads is zeroed past an utterance's end, and pooling (its global context
    included) and self-attention see real frames only, so in eval mode a padded utterance embeds
    as it does alone (tested); batch norm in training counts padded frames.

    Parameters (measured, 192-d; at 72 mels the same count as WeSpeaker's modules, tested):
    B0 703,060, B2 2,530,208, B6 12,394,784; at 80 mels B0 773,852, B2 3,125,668 (84 bins),
    B6 14,194,084.

    Args:
        num_mels: input feature size (F).
        channels: the stem's channels (C); C*F stays the 1-D width throughout.
        freq_strides, time_strides, blocks, expansions, attention_reductions: one entry per stage.
        out_channels: the head's width (null: none).
        head_2d: the head is per frequency bin (its output is ``out_channels x F/strides``).
        embed_dim: embedding size (D).
        pool_channels: the attentive pooling's bottleneck.
        context_kernels: the time-context block's ConvNeXt-like kernels, in frames.
        heads: self-attention heads.

    Example:
        >>> net = ReDimNet2(num_mels=24, channels=4, freq_strides=(1, 2), time_strides=(1, 2),
        ...                 blocks=(1, 1), expansions=(2, 1), attention_reductions=(None, 8),
        ...                 out_channels=16, embed_dim=8)
        >>> net(torch.randn(2, 50, 24), torch.tensor([50, 30])).shape
        torch.Size([2, 8])
    """

    def __init__(
        self,
        num_mels: int = 72,
        channels: int = 12,
        freq_strides: tuple[int, ...] = (1, 2, 1, 2, 1, 2),
        time_strides: tuple[int, ...] = (1, 1, 2, 1, 2, 1),
        blocks: tuple[int, ...] = (2, 3, 4, 5, 4, 3),
        expansions: tuple[float, ...] = (2, 1, 1, 1, 1, 1),
        attention_reductions: tuple[int | None, ...] = (36, 36, 36, 36, 18, 18),
        out_channels: int | None = 64,
        head_2d: bool = False,
        embed_dim: int = 192,
        pool_channels: int = 128,
        context_kernels: tuple[int, ...] = (7, 19, 31, 59),
        heads: int = 4,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        settings = (freq_strides, time_strides, blocks, expansions, attention_reductions)
        if len({len(s) for s in settings}) != 1:
            raise ConfigError(
                "ReDimNet2: freq_strides, time_strides, blocks, expansions and "
                "attention_reductions need one entry per stage, got lengths "
                f"{[len(s) for s in settings]}"
            )
        freq_total = math.prod(freq_strides)
        self.bins = -(-num_mels // freq_total) * freq_total  # padded up to the strides
        self.time_total = math.prod(time_strides)
        width = channels * self.bins
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), ChannelNorm(channels))
        self.stages = self._stages(width, channels, settings, tuple(context_kernels), heads)
        self.mix = LayerMix(len(self.stages) + 1, width)
        self.c_out = channels * freq_total  # the last stage's channels
        self.head_2d = head_2d and out_channels is not None
        self.head, pooled = self._head(width, self.c_out, out_channels, head_2d)
        self.pool = ContextAttentiveStats(pooled, pool_channels, global_context=True)
        self.pool_norm = nn.BatchNorm1d(2 * pooled)
        self.embedding = nn.Linear(2 * pooled, embed_dim)

    @staticmethod
    def _stages(
        width: int, channels: int, settings: tuple, kernels: tuple[int, ...], heads: int
    ) -> nn.ModuleList:
        """The stages; stage ``i`` mixes the stem's map and the ``i`` stages' before it."""
        stages = nn.ModuleList()
        c_in, time_stride = channels, 1
        for i, (sf, st, n, expansion, reduction) in enumerate(zip(*settings, strict=True)):
            time_stride *= st
            context = None
            if reduction is not None:
                hidden = max(width // reduction // heads * heads, heads)  # WeSpeaker: C*F // r
                context = TimeContext(width, hidden, kernels, heads)
            stages.append(Stage(i + 1, width, c_in, sf, time_stride, n, expansion, context))
            c_in *= sf
        return stages

    def _head(
        self, width: int, c_out: int, out_channels: int | None, head_2d: bool
    ) -> tuple[nn.Module, int]:
        """The 1x1 head and the pooled width."""
        if out_channels is None:
            return nn.Identity(), width
        if head_2d:
            return nn.Conv2d(c_out, out_channels, 1), out_channels * (width // c_out)
        return nn.Conv1d(width, out_channels, 1), out_channels

    def _frames(self, features: Tensor) -> Tensor:
        """(B,T,F) -> (B,1,F',T'): bins padded to ``self.bins``, frames cut to a multiple of
        the time strides' product (or padded up to it)."""
        x = features.transpose(1, 2)  # (B,F,T)
        frames = x.shape[-1]
        keep = max(frames // self.time_total, 1) * self.time_total
        x = nn.functional.pad(x, (0, max(keep - frames, 0), 0, self.bins - x.shape[1]))
        return x[..., :keep].unsqueeze(1)

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B,T,F) features and (B,) frame counts -> (B,D) embeddings.

        With ``lengths`` each utterance is cut to a multiple of the time strides' product, as
        it is alone, and every map a convolution reads is zeroed past its end: in eval mode an
        utterance padded in a batch embeds as it does alone.
        """
        x = self._frames(features)
        frames = x.shape[-1]
        keep = None
        if lengths is not None:  # WeSpeaker's cut, per utterance (an utterance alone: _frames)
            lengths = lengths.to(x.device).clamp(1, features.shape[1])
            lengths = (lengths // self.time_total).clamp_min(1) * self.time_total
            keep = time_mask(lengths, frames, x.shape[0], x.device).to(x.dtype)
        maps = [zero_pad(to_1d(self.stem(zero_pad(x, keep))), keep)]  # (B, C*F, T)
        for stage in self.stages:
            maps.append(stage(maps, lengths))
        x = self.mix(maps)
        if self.head_2d:  # the head per frequency bin, flattened channel-major as WeSpeaker's
            x = to_2d(x, self.c_out)
        x = self.head(x).flatten(1, -2)  # (B, D', T)
        mask = time_mask(lengths, frames, x.shape[0], x.device)
        return self.embedding(self.pool_norm(self.pool(x, mask)))
