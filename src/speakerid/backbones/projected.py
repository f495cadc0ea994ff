"""A backbone followed by a dense "shared" layer whose output is the embedding (Hive-MTL)."""

from torch import Tensor, nn


class Projected(nn.Module):
    """``backbone`` -> Linear ``embed_dim`` (optionally ReLU): Hive-MTL's shared layer between the
    ResCNN and its task branches; verification uses this layer's output (cosine scoring
    L2-normalizes it). The original's activation is not stated; linear by default.

    Example:
        >>> import torch
        >>> from speakerid.backbones import ResCnn
        >>> net = Projected(ResCnn(num_mels=16, channels=(4, 4, 4, 4), embed_dim=8, blocks=1), 12)
        >>> net(torch.randn(2, 32, 16)).shape
        torch.Size([2, 12])
    """

    def __init__(self, backbone: nn.Module, embed_dim: int = 1024, activation: bool = False):
        super().__init__()
        self.backbone = backbone
        self.embed_dim = embed_dim
        self.project = nn.Sequential(
            nn.Linear(backbone.embed_dim, embed_dim), *([nn.ReLU()] if activation else [])
        )

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.project(self.backbone(features, lengths))
