"""Deep Speaker's ResCNN (Li et al., 2017)."""

from torch import Tensor, nn

from speakerid.backbones.pooling import masked_mean, time_mask


class ClippedReLU(nn.Module):
    """min(max(x, 0), ceiling)."""

    def __init__(self, ceiling: float = 20.0) -> None:
        super().__init__()
        self.ceiling = ceiling

    def forward(self, x: Tensor) -> Tensor:
        return x.clamp(0.0, self.ceiling)


class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            ClippedReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.out = ClippedReLU()

    def forward(self, x: Tensor, keep: Tensor | None = None) -> Tensor:
        """(B,C,T,F) -> (B,C,T,F); ``keep`` (B,1,T,1) zeroes the padded frames the second
        convolution would read (as its zero padding does for an utterance alone)."""
        mid = self.body[:3](x)
        out = self.out(x + self.body[3:](mid if keep is None else mid * keep))
        return out if keep is None else out * keep


class ResCnn(nn.Module):
    """Deep Speaker's residual CNN, https://arxiv.org/abs/1705.02304 (Li et al., 2017).

    Four stages (64, 128, 256, 512 filters), each a 5x5 stride-2 convolution -> BN -> clipped
    ReLU, then ``blocks`` residual blocks; the (T/16, F/16 x 512) map is averaged over real frames
    -> Linear -> L2. With 64 filterbanks that is 2,048 features per frame, as in the paper.
    ``normalize=False`` leaves out the L2 step: Deep Speaker's softmax pre-training classifies the
    affine output (a classifier on unit vectors learns slowly); cosine heads and cosine scoring
    are unaffected, so a stage-2 triplet run can keep either.

    Example:
        >>> net = ResCnn(num_mels=64, channels=(4, 8, 8, 8), embed_dim=16, blocks=1)
        >>> net(torch.randn(2, 64, 64), torch.tensor([64, 40])).shape
        torch.Size([2, 16])
    """

    def __init__(
        self,
        num_mels: int = 64,
        channels: tuple[int, ...] | list[int] = (64, 128, 256, 512),
        embed_dim: int = 512,
        blocks: int = 3,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.normalize = normalize
        stages, c_in, bins = [], 1, num_mels
        for c_out in channels:
            stages += [
                nn.Conv2d(c_in, c_out, 5, stride=2, padding=2, bias=False),
                nn.BatchNorm2d(c_out),
                ClippedReLU(),
                *(_ResBlock(c_out) for _ in range(blocks)),
            ]
            c_in, bins = c_out, (bins + 1) // 2
        self.stages = nn.Sequential(*stages)
        self.linear = nn.Linear(c_in * bins, embed_dim)

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B,T,F) features and (B,) frame counts -> (B,D) embeddings. With ``lengths`` every
        map a convolution reads is zeroed past each utterance's end at its own frame rate, so
        in eval mode a padded utterance embeds as it does alone."""
        x = features.unsqueeze(1)  # (B,1,T,F)
        keep = None
        if lengths is not None:
            x = x * time_mask(lengths, x.shape[2], x.shape[0], x.device)[:, None, :, None]
        for layer in self.stages:
            if isinstance(layer, nn.Conv2d) and lengths is not None:  # 5x5, stride 2, pad 2
                lengths = (lengths.to(x.device).clamp(1, x.shape[2]) - 1) // 2 + 1
                keep = time_mask(lengths, (x.shape[2] - 1) // 2 + 1, x.shape[0], x.device)
                keep = keep[:, None, :, None].to(x.dtype)
            x = layer(x, keep) if isinstance(layer, _ResBlock) else layer(x)
            if isinstance(layer, ClippedReLU) and keep is not None:
                x = x * keep
        b, c, t, f = x.shape
        x = x.permute(0, 1, 3, 2).reshape(b, c * f, t)  # (B, C*F', T')
        mask = time_mask(lengths, t, b, x.device)
        out = self.linear(masked_mean(x, mask))
        return nn.functional.normalize(out, dim=-1) if self.normalize else out
