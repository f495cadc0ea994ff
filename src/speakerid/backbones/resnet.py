"""ResNets: ResNet-18 on spectrogram images (torchvision's layout, built here) and the
WeSpeaker-style ResNet-34 with statistics pooling."""

import torch
from torch import Tensor, nn

from speakerid.backbones.pooling import masked_stats, scaled_lengths, time_mask


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a (projected) identity shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int | tuple[int, int] = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def _layers(c_in: int, widths, depths, strides) -> tuple[nn.Sequential, int]:
    stages = []
    for width, depth, stride in zip(widths, depths, strides, strict=True):
        blocks = [BasicBlock(c_in, width, stride)]
        blocks += [BasicBlock(width, width) for _ in range(depth - 1)]
        stages.append(nn.Sequential(*blocks))
        c_in = width
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
    """ResNet-34 speaker encoder as in WeSpeaker: fbank as a 1-channel image, 32 base channels,
    stages of 3/4/6/3 basic blocks (32, 64, 128, 256; strides 1, 2, 2, 2), statistics pooling
    (mean and standard deviation over real frames) -> Linear ``embed_dim`` (256).

    Wang et al., "WeSpeaker: A Research and Production oriented Speaker Embedding Learning
    Toolkit", https://arxiv.org/abs/2210.17016.

    Example:
        >>> net = ResNet34(num_mels=40, width=4, embed_dim=16)
        >>> net(torch.randn(2, 100, 40), torch.tensor([100, 60])).shape
        torch.Size([2, 16])
    """

    def __init__(
        self,
        num_mels: int = 80,
        width: int = 32,
        embed_dim: int = 256,
        depths: tuple[int, ...] | list[int] = (3, 4, 6, 3),
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.layers, channels = _layers(width, widths, depths, [1, 2, 2, 2])
        bins = (num_mels + 7) // 8
        self.pooled = 2 * channels * bins
        self.embedding = nn.Linear(self.pooled, embed_dim)

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        x = self.layers(self.stem(features.transpose(1, 2).unsqueeze(1)))  # (B,C,F/8,T/8)
        b, c, f, t = x.shape
        x = x.reshape(b, c * f, t)
        mask = time_mask(scaled_lengths(lengths, features.shape[1], t), t, b, x.device)
        return self.embedding(masked_stats(x, mask))
