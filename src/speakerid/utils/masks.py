"""The padding mask every front end, feature augmentation and pooling shares."""

import torch
from torch import Tensor


def real_frames(lengths: Tensor, frames: int) -> Tensor:
    """(B,T) bool: True on each utterance's first ``lengths[b]`` of ``frames`` frames.

    Example:
        >>> real_frames(torch.tensor([2, 0]), 3).tolist()
        [[True, True, False], [False, False, False]]
    """
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]
