"""Batch-invariant reflect padding for SpeechBrain's convolutions (its ECAPA-TDNN and x-vector).

SpeechBrain's ``Conv1d`` pads "same" by reflection at the ends of the whole (B,T) tensor: an
utterance padded in a batch has its last frames reflected from the padding, not from its own
end, so its embedding differs from the one it gets alone. :class:`ReflectAtEnds` puts a forward
pre-hook on every such convolution (kernel > 1) that, for the current batch's frame counts,
rewrites each utterance's padded frames with the reflection of its own last frames — what the
convolution would have padded it with alone. Weights and state-dict keys are untouched.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from speechbrain.nnet.CNN import Conv1d
from torch import Tensor, nn


def reflect_past_end(x: Tensor, lengths: Tensor, time_dim: int) -> Tensor:
    """``x`` with frame ``L + j`` of each utterance (length ``L``) replaced by frame ``L - 2 - j``
    (reflection about the last real frame; far past the end clamped to frame 0).

    Example:
        >>> reflect_past_end(torch.tensor([[1.0, 2.0, 3.0, 0.0, 0.0]]), torch.tensor([3]), 1)
        tensor([[1., 2., 3., 2., 1.]])
    """
    frames = x.shape[time_dim]
    t = torch.arange(frames, device=x.device)[None, :]  # (1,T)
    last = lengths.to(x.device).clamp(1, frames)[:, None] - 1  # (B,1)
    index = torch.where(t <= last, t, (2 * last - t).clamp_min(0))  # (B,T)
    shape = [1] * x.ndim
    shape[0], shape[time_dim] = x.shape[0], frames
    index = index.view(shape).expand_as(x)
    return x.gather(time_dim, index)


class ReflectAtEnds:
    """Hooks on a module's SpeechBrain convolutions; inside :meth:`frames` they pad each
    utterance by reflecting its own end. Outside it (or with ``lengths`` None) they do nothing.

    Example:
        >>> from speechbrain.lobes.models.Xvector import Xvector
        >>> net = Xvector(in_channels=8, tdnn_channels=[4] * 5, lin_neurons=4).eval()
        >>> reflect = ReflectAtEnds(net)
        >>> with reflect.frames(torch.tensor([30, 20])):
        ...     net(torch.randn(2, 30, 8), torch.tensor([1.0, 20 / 30])).shape
        torch.Size([2, 1, 4])
    """

    def __init__(self, module: nn.Module) -> None:
        self._lengths: Tensor | None = None
        for conv in module.modules():
            if isinstance(conv, Conv1d) and conv.kernel_size > 1 and conv.padding == "same":
                conv.register_forward_pre_hook(self._hook)

    def _hook(self, conv: Conv1d, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...] | None:
        if self._lengths is None:
            return None
        time_dim = -1 if conv.skip_transpose else 1  # (B,C,T) or (B,T,C)
        return (reflect_past_end(inputs[0], self._lengths, time_dim % inputs[0].ndim),)

    @contextmanager
    def frames(self, lengths: Tensor | None) -> Iterator[None]:
        """The frame counts of the batch the wrapped module is about to run on."""
        self._lengths = lengths
        try:
            yield
        finally:
            self._lengths = None
