"""ResNets: ResNet-18 on spectrogram images (torchvision's layout, built here) and WeSpeaker's
ResNets (34 to 293) with statistics pooling."""

import torch
from torch import Tensor, nn

from speakerid.backbones.pooling import masked_stats, masked_tstp, time_mask

# (keep_in, keep_out): (B,1,1,T) 0/1 masks of a block's input and output frames, or None
Keep = tuple[Tensor, Tensor] | None


def _keep(lengths: Tensor | None, x: Tensor, frames: int | None = None) -> Tensor | None:
    """(B,1,1,T) 0/1 mask of real frames for (B,C,F,T) maps of ``frames`` frames, or None."""
    if lengths is None:
        return None
    frames = x.shape[-1] if frames is None else frames
    return time_mask(lengths, frames, x.shape[0], x.device)[:, None, None, :].to(x.dtype)


def _zero_pad(x: Tensor, keep: Tensor | None) -> Tensor:
    """Zero the padded frames, so the next 3x3 convolution reads zeros past an utterance's end,
    as its own zero padding gives it when the utterance is alone."""
    return x if keep is None else x * keep


def _shortcut(c_in: int, c_out: int, stride: int | tuple[int, int]) -> nn.Sequential:
    """Identity, or a strided 1x1 projection with batch norm where the shape changes."""
    if stride == 1 and c_in == c_out:
        return nn.Sequential()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a (projected) identity shortcut."""

    expansion = 1  # output channels per ``c_out``

    def __init__(self, c_in: int, c_out: int, stride: int | tuple[int, int] = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = _shortcut(c_in, c_out, stride)

    def forward(self, x: Tensor, keep: Keep = None) -> Tensor:
        keep_out = None if keep is None else keep[1]
        out = _zero_pad(torch.relu(self.bn1(self.conv1(x))), keep_out)
        return _zero_pad(torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x)), keep_out)


class Bottleneck(nn.Module):
    """He et al.'s bottleneck: 1x1 down to ``width``, 3x3 (strided), 1x1 up to 4 x ``width``,
    batch norm after each, (projected) identity shortcut."""

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int | tuple[int, int] = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, 4 * width, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * width)
        self.shortcut = _shortcut(c_in, 4 * width, stride)

    def forward(self, x: Tensor, keep: Keep = None) -> Tensor:
        keep_in, keep_out = (None, None) if keep is None else keep
        out = _zero_pad(torch.relu(self.bn1(self.conv1(x))), keep_in)
        out = torch.relu(self.bn2(self.conv2(out)))  # 1x1 next: no need to zero
        return _zero_pad(torch.relu(self.bn3(self.conv3(out)) + self.shortcut(x)), keep_out)


def _layers(
    c_in: int,
    widths: list[int],
    depths: tuple[int, ...] | list[int],
    strides: list[int],
    block: type[BasicBlock] | type[Bottleneck] = BasicBlock,
) -> tuple[nn.Sequential, int]:
    """Stages of ``depths[i]`` blocks, the first of each strided; -> (stages, output channels)."""
    stages = []
    for width, depth, stride in zip(widths, depths, strides, strict=True):
        blocks = [block(c_in, width, stride)]
        c_in = width * block.expansion
        blocks += [block(c_in, width) for _ in range(depth - 1)]
        stages.append(nn.Sequential(*blocks))
    return nn.Sequential(*stages), c_in


class ResNet18(nn.Module):
    """ResNet-18 (He et al., 2016) on a spectrogram image, as torchvision builds it.

    The (B,T,F) image (the ``spectrogram_image`` front end: 224x224) is repeated to 3 channels —
    the layout ImageNet weights expect — then conv 7x7/2, max-pool, four stages of two basic
    blocks (64, 128, 256, 512), global average pool: the 512-d pooled features are the embedding
    (a ``softmax`` head is the classifier, the contrastive-center loss reads the same features).
    No pretrained weights are downloaded; ``weights`` loads a torchvision ``resnet18`` state dict
    from a local file (its ``fc`` is dropped).

    Example:
        >>> net = ResNet18(width=8)
        >>> net(torch.randn(2, 64, 64)).shape
        torch.Size([2, 64])
    """

    def __init__(
        self,
        num_mels: int = 224,
        width: int = 64,
        weights: str | None = None,
        embed_dim: int | None = None,
    ) -> None:
        super().__init__()
        if embed_dim is not None and embed_dim != 8 * width:
            raise ValueError(f"ResNet-18's embedding is 8 x width = {8 * width}, not {embed_dim}")
        self.embed_dim = 8 * width
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 7, 2, 3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        )
        self.layers, _ = _layers(
            width, [width, 2 * width, 4 * width, 8 * width], [2, 2, 2, 2], [1, 2, 2, 2]
        )
        if weights:
            self.load_torchvision(weights)

    def load_torchvision(self, path: str) -> None:
        """Copy a torchvision ``resnet18`` state dict (a local file) into this network."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        renamed = {}
        for key, value in state.items():
            if key.startswith("fc."):
                continue
            key = key.replace("conv1.", "stem.0.", 1) if key.startswith("conv1.") else key
            key = key.replace("bn1.", "stem.1.", 1) if key.startswith("bn1.") else key
            for i in range(4):
                key = key.replace(f"layer{i + 1}.", f"layers.{i}.", 1)
            renamed[key.replace("downsample.", "shortcut.")] = value
        self.load_state_dict(renamed)

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        x = self.layers(self.stem(features.unsqueeze(1).expand(-1, 3, -1, -1)))
        return x.mean(dim=(2, 3))


class ResNet34(nn.Module):
    """WeSpeaker's ResNets (Wang et al., "WeSpeaker: A Research and Production oriented Speaker
    Embedding Learning Toolkit", ICASSP 2023, https://arxiv.org/abs/2210.17016; He et al. 2016):
    fbank as a 1-channel image, a 3x3 stem of ``width`` channels, four stages (``width`` x 1, 2,
    4, 8; strides 1, 2, 2, 2 on frequency and time), statistics pooling of the (B, C x F/8, T/8)
    map -> Linear ``embed_dim``. ResNet34 by default; ``bottleneck`` with ``depths`` gives the
    deeper ones of the same file (ResNet50 ... ResNet293).

    With ``unbiased_std`` (the YAMLs) this computes what WeSpeaker's code does (parity-tested
    against it, tests/integration/test_parity_wespeaker.py): the same layers in the same order,
    TSTP's mean and sqrt(unbiased variance + 1e-7). Pooling is over real frames only (WeSpeaker
    pools over every frame) and every map a convolution reads is zeroed past an utterance's end
    (WeSpeaker's is not), so in eval mode a padded utterance embeds as it does alone; batch norm
    in training counts padded frames. Parameters at
    80 mels and 256-d, measured (same as WeSpeaker's): ResNet34 6,634,336; ResNet50
    11,131,360; ResNet101 15,892,448; ResNet152 19,814,880; ResNet221 23,792,224; ResNet293
    28,626,016.

    Args:
        num_mels: input feature size (F).
        width: channels of the stem and the first stage (WeSpeaker's ``m_channels``).
        embed_dim: embedding size (D).
        depths: blocks per stage: (3, 4, 6, 3) for ResNet34 and 50, (3, 4, 23, 3) for 101,
            (3, 8, 36, 3) for 152, (6, 16, 48, 3) for 221, (10, 20, 64, 3) for 293.
        bottleneck: bottleneck blocks (1x1, 3x3, 1x1 to 4x the stage width): ResNet50 and deeper.
        unbiased_std: WeSpeaker's standard deviation, sqrt(unbiased variance + 1e-7); False
            keeps speakerid's earlier one (variance over the frames, floored at 1e-5), which the
            checkpoints written before this setting existed were trained with.
        two_embedding_layers: WeSpeaker's ``two_emb_layer``: Linear, ReLU, batch norm (no
            affine), Linear; the second's output is the embedding.

    Example:
        >>> net = ResNet34(num_mels=40, width=4, embed_dim=16, unbiased_std=True)
        >>> net(torch.randn(2, 100, 40), torch.tensor([100, 60])).shape
        torch.Size([2, 16])
        >>> deep = ResNet34(num_mels=40, width=4, depths=(1, 1, 1, 1), bottleneck=True)
        >>> deep(torch.randn(2, 100, 40)).shape
        torch.Size([2, 256])
    """

    def __init__(
        self,
        num_mels: int = 80,
        width: int = 32,
        embed_dim: int = 256,
        depths: tuple[int, ...] | list[int] = (3, 4, 6, 3),
        bottleneck: bool = False,
        unbiased_std: bool = False,
        two_embedding_layers: bool = False,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.unbiased_std = unbiased_std
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        widths = [width, 2 * width, 4 * width, 8 * width]
        block = Bottleneck if bottleneck else BasicBlock
        self.layers, channels = _layers(width, widths, depths, [1, 2, 2, 2], block)
        bins = (num_mels + 7) // 8  # three stride-2 stages: ceil(F / 8) frequency bins
        self.pooled = 2 * channels * bins
        self.embedding = nn.Linear(self.pooled, embed_dim)
        self.embedding2: nn.Module = nn.Identity()
        if two_embedding_layers:
            self.embedding2 = nn.Sequential(
                nn.ReLU(), nn.BatchNorm1d(embed_dim, affine=False), nn.Linear(embed_dim, embed_dim)
            )

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B,T,F) features and (B,) frame counts -> (B,D) embeddings.

        With ``lengths``, every activation a 3x3 convolution reads is zeroed past each
        utterance's end (at that stage's frame rate), so in eval mode an utterance padded in a
        batch embeds as it does alone (tests/integration/test_batch_invariance.py).
        """
        x = features.transpose(1, 2).unsqueeze(1)  # (B,1,F,T)
        keep = _keep(lengths, x)
        x = _zero_pad(self.stem(_zero_pad(x, keep)), keep)
        for stage in self.layers:
            for block in stage:
                conv = block.conv1 if isinstance(block, BasicBlock) else block.conv2
                stride = conv.stride[-1]
                if lengths is not None:  # a pad-1 3x3 conv's frames
                    lengths = (lengths.to(x.device).clamp(1, x.shape[-1]) - 1) // stride + 1
                frames_out = (x.shape[-1] - 1) // stride + 1
                keep_out = _keep(lengths, x, frames_out)
                x = block(x, None if keep is None or keep_out is None else (keep, keep_out))
                keep = keep_out
        b, c, f, t = x.shape
        x = x.reshape(b, c * f, t)  # channel-major, frequency-minor, as WeSpeaker flattens
        mask = time_mask(lengths, t, b, x.device)
        stats = masked_tstp(x, mask) if self.unbiased_std else masked_stats(x, mask)
        return self.embedding2(self.embedding(stats))
