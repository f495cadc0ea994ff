"""The GE2E project's AudioEncoder (Conv1D stack + LSTM) and its raw-waveform variant."""

import torch
from torch import Tensor, nn

from speakerid.backbones.pooling import masked_max, time_mask


def _conv(c_in: int, c_out: int, kernel: int, stride: int, norm: bool, dropout: float):
    layers: list[nn.Module] = [nn.Conv1d(c_in, c_out, kernel, stride, padding=kernel // 2)]
    if norm:
        layers.append(nn.BatchNorm1d(c_out))
    layers.append(nn.ReLU())
    if norm and dropout:
        layers.append(nn.Dropout(dropout))
    return layers


def _conv_frames(lengths: Tensor, kernel: int, stride: int) -> Tensor:
    return (lengths + 2 * (kernel // 2) - kernel) // stride + 1


class AudioEncoder(nn.Module):
    """Conv1D stack over log-mel frames, then an LSTM whose last state is the embedding.

    The original (a Keras "encoders" project trained with GE2E), with depth ``d``: k7 s2 F->d,
    BN, ReLU, dropout; k5 s2 d->2d, BN, ReLU, dropout; k3 2d->2d, ReLU; k3 2d->4d, BN, ReLU,
    dropout; k3 4d->4d, ReLU; k1 4d->4d, BN, ReLU, dropout (time / 4, no pooling) ->
    LSTM(``embed_dim``) -> last state -> ReLU -> L2. At d=128, F=80, 256 units: 2.67 M
    parameters. Convolutions pad ("same") so frame counts follow the strides; after every block
    the frames past an utterance's end are zeroed (what its own convolution padding would see),
    and the LSTM reads the real frames only (packed): batching does not change an embedding.

    Args:
        num_mels: input features (F).
        depth: d.
        embed_dim: LSTM units (D).
        dropout: after every normalized block.

    Example:
        >>> net = AudioEncoder(num_mels=40, depth=8, embed_dim=16)
        >>> net(torch.randn(2, 100, 40), torch.tensor([100, 60])).shape
        torch.Size([2, 16])
    """

    SPEC = (
        (7, 2, 1, True),
        (5, 2, 2, True),
        (3, 1, 2, False),
        (3, 1, 4, True),
        (3, 1, 4, False),
        (1, 1, 4, True),
    )  # kernel, stride, width (x d), normalized

    def __init__(
        self, num_mels: int = 80, depth: int = 128, embed_dim: int = 256, dropout: float = 0.25
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        blocks, c_in = [], num_mels
        for kernel, stride, width, norm in self.SPEC:
            blocks.append(nn.Sequential(*_conv(c_in, width * depth, kernel, stride, norm, dropout)))
            c_in = width * depth
        self.convs = nn.ModuleList(blocks)
        self.lstm = nn.LSTM(c_in, embed_dim, batch_first=True)

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        x = features.transpose(1, 2)  # (B,F,T)
        frames = torch.full((x.shape[0],), x.shape[-1], device=x.device)
        if lengths is not None:
            frames = lengths.to(x.device)
        for block, (kernel, stride, _, _) in zip(self.convs, self.SPEC, strict=True):
            x = block(x)
            frames = _conv_frames(frames, kernel, stride).clamp(1, x.shape[-1])
            x = x * time_mask(frames, x.shape[-1], x.shape[0], x.device)[:, None, :]  # zero pad
        packed = nn.utils.rnn.pack_padded_sequence(
            x.transpose(1, 2), frames.cpu(), batch_first=True, enforce_sorted=False
        )
        _, (hidden, _) = self.lstm(packed)
        return nn.functional.normalize(torch.relu(hidden[-1]), dim=-1)


class AudioEncoderRaw(nn.Module):
    """The raw-waveform AudioEncoder: four Conv1D blocks straight on samples.

    Filters d, 2d, 3d, 4d; kernels 32, 3, 3, 3; strides 4, 1, 1, 1; each conv -> BN -> ReLU ->
    max-pool 4, 2, 2, 2; then a global max pool over real frames -> L2. Takes the ``waveform``
    front end's (B,S,1) "features".

    Example:
        >>> net = AudioEncoderRaw(depth=4)
        >>> net(torch.randn(2, 8000, 1), torch.tensor([8000, 4000])).shape
        torch.Size([2, 16])
    """

    KERNELS, STRIDES, POOLS = (32, 3, 3, 3), (4, 1, 1, 1), (4, 2, 2, 2)

    def __init__(self, num_mels: int = 1, depth: int = 128, embed_dim: int | None = None) -> None:
        super().__init__()
        if embed_dim is not None and embed_dim != 4 * depth:
            raise ValueError(f"the raw AudioEncoder's embedding is 4 x depth = {4 * depth}")
        self.embed_dim = 4 * depth
        layers, c_in = [], num_mels
        for i, (kernel, stride, pool) in enumerate(
            zip(self.KERNELS, self.STRIDES, self.POOLS, strict=True)
        ):
            c_out = (i + 1) * depth
            layers += [
                nn.Conv1d(c_in, c_out, kernel, stride, padding=kernel // 2),
                nn.BatchNorm1d(c_out),
                nn.ReLU(),
                nn.MaxPool1d(pool, ceil_mode=True),
            ]
            c_in = c_out
        self.blocks = nn.Sequential(*layers)

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B,S,1) samples and (B,) counts -> (B,4d). With ``lengths`` each block's output is
        zeroed past an utterance's end before its max-pool (ReLU outputs are >= 0, so a window
        straddling the end keeps its real maximum) and the next convolution."""
        x = features.transpose(1, 2)  # (B,1,S)
        frames = None if lengths is None else lengths.to(x.device).clamp(1, x.shape[-1])
        for layer in self.blocks:
            if frames is not None and isinstance(layer, nn.Conv1d):
                x = x * time_mask(frames, x.shape[-1], x.shape[0], x.device)[:, None, :]
                frames = _conv_frames(frames, layer.kernel_size[0], layer.stride[0])
            if frames is not None and isinstance(layer, nn.MaxPool1d):
                x = x * time_mask(frames, x.shape[-1], x.shape[0], x.device)[:, None, :]
                frames = -(-frames // layer.kernel_size)  # ceil mode
            x = layer(x)
        mask = time_mask(frames, x.shape[-1], x.shape[0], x.device)
        return nn.functional.normalize(masked_max(x, mask), dim=-1)
