"""Masked pooling over time: padded frames never reach a statistic."""

import torch
from torch import Tensor

from speakerid.utils.masks import real_frames


def time_mask(lengths: Tensor | None, frames: int, batch: int, device) -> Tensor:
    """(B,T) bool, True on real frames (all True without ``lengths``)."""
    if lengths is None:
        return torch.ones(batch, frames, dtype=torch.bool, device=device)
    return real_frames(lengths.to(device).clamp(1, frames), frames)


def scaled_lengths(lengths: Tensor | None, frames_in: int, frames_out: int) -> Tensor | None:
    """Frame counts after a layer stack that maps ``frames_in`` frames to ``frames_out``."""
    if lengths is None:
        return None
    return torch.ceil(lengths.float() * frames_out / frames_in).long().clamp(1, frames_out)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of (B,C,T) over real frames -> (B,C)."""
    weight = mask[:, None, :].to(x.dtype)
    return (x * weight).sum(-1) / weight.sum(-1).clamp_min(1)


def masked_stats(x: Tensor, mask: Tensor, eps: float = 1e-5) -> Tensor:
    """Mean and standard deviation of (B,C,T) over real frames -> (B,2C)."""
    mean = masked_mean(x, mask)
    weight = mask[:, None, :].to(x.dtype)
    var = ((x - mean[..., None]) ** 2 * weight).sum(-1) / weight.sum(-1).clamp_min(1)
    return torch.cat([mean, var.clamp_min(eps).sqrt()], dim=1)


def masked_tstp(x: Tensor, mask: Tensor, eps: float = 1e-7) -> Tensor:
    """WeSpeaker's temporal statistics (its ``TSTP``; Wang et al. 2023, arXiv:2210.17016) of
    (B,C,T) over real frames -> (B,2C): the mean and sqrt(unbiased variance + ``eps``)."""
    mean = masked_mean(x, mask)
    weight = mask[:, None, :].to(x.dtype)
    # n - 1 frames of freedom (torch.var's default); one real frame gives 0, not NaN
    dof = (weight.sum(-1) - 1).clamp_min(1)
    var = ((x - mean[..., None]) ** 2 * weight).sum(-1) / dof
    return torch.cat([mean, (var + eps).sqrt()], dim=1)


def masked_max(x: Tensor, mask: Tensor) -> Tensor:
    """Maximum of (B,C,T) over real frames -> (B,C)."""
    return x.masked_fill(~mask[:, None, :], float("-inf")).amax(-1)
