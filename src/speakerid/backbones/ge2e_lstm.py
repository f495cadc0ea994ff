"""The GE2E speaker encoder (Wan et al., 2018) as Resemblyzer ships it: 3 LSTM layers of 256,
a 256-d projection, ReLU, L2 normalization; whole utterances embedded as the normalized mean of
1.6 s partial windows.

"Generalized End-to-End Loss for Speaker Verification", https://arxiv.org/abs/1710.10467; the
weights of ``make pretrained`` are Resemblyzer's ``pretrained.pt`` (Apache-2.0), trained on
real speech (LibriSpeech, VoxCeleb 1 and 2).
"""

import torch
from torch import Tensor, nn


def partial_starts(frames: int, partial_frames: int, frame_step: int, min_frames: int) -> list[int]:
    """Start frames of the partial windows of an utterance of ``frames`` frames (Resemblyzer's
    ``compute_partial_slices``): every ``frame_step`` frames, the last one dropped when fewer
    than ``min_frames`` of its frames are audio (unless it is the only one)."""
    steps = max(1, frames - partial_frames + frame_step + 1)
    starts = list(range(0, steps, frame_step))
    # Resemblyzer's coverage test on samples, exactly in frames: n // hop = frames - 1
    if len(starts) > 1 and frames - 1 < starts[-1] + min_frames:
        starts = starts[:-1]
    return starts


class Ge2eLstm(nn.Module):
    """``(B,T,F) features, (B,) frames -> (B,D)`` L2-normalized embeddings.

    Training (crops of ``partial_frames``): each sequence's last state. Evaluation: each
    utterance cut into windows of ``partial_frames`` every ``1/rate`` seconds, the last kept
    when at least ``min_coverage`` of it is audio; the windows' embeddings averaged and
    normalized (Resemblyzer's ``embed_utterance``). The front end must give frames past the end
    (``Ge2eMel`` pads in eval mode).

    Args:
        num_mels: input features (F).
        hidden: LSTM width; layers: LSTM depth.
        embed_dim: projection size (D).
        partial_frames: frames per window (160: 1.6 s at a 10 ms hop).
        rate: windows per second.
        min_coverage: share of the last window that must be audio.
        hop_ms: the front end's frame step.

    Example:
        >>> net = Ge2eLstm(num_mels=8, hidden=16, layers=2, embed_dim=12)
        >>> net(torch.randn(2, 160, 8), torch.tensor([160, 120])).shape
        torch.Size([2, 12])
    """

    def __init__(
        self,
        num_mels: int = 40,
        hidden: int = 256,
        layers: int = 3,
        embed_dim: int = 256,
        partial_frames: int = 160,
        rate: float = 1.3,
        min_coverage: float = 0.75,
        hop_ms: float = 10.0,
    ) -> None:
        super().__init__()
        if not 0 < min_coverage <= 1:
            raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage}")
        self.embed_dim = embed_dim
        self.lstm = nn.LSTM(num_mels, hidden, layers, batch_first=True)
        self.linear = nn.Linear(hidden, embed_dim)
        self.partial_frames = partial_frames
        self.frame_step = round(1000 / rate / hop_ms)
        self.min_frames = round(min_coverage * partial_frames)

    def _embed(self, windows: Tensor, lengths: Tensor | None = None) -> Tensor:
        if lengths is not None and bool((lengths < windows.shape[1]).any()):
            windows = nn.utils.rnn.pack_padded_sequence(
                windows, lengths.clamp(1, windows.shape[1]).cpu(), True, enforce_sorted=False
            )
        _, (hidden, _) = self.lstm(windows)
        return nn.functional.normalize(torch.relu(self.linear(hidden[-1])), dim=1)

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        if self.training or lengths is None:
            return self._embed(features, lengths)
        out = []
        for row, frames in enumerate(lengths.tolist()):
            starts = partial_starts(frames, self.partial_frames, self.frame_step, self.min_frames)
            need = starts[-1] + self.partial_frames
            feats = features[row]
            if feats.shape[0] < need:  # a front end without Ge2eMel's padding
                feats = nn.functional.pad(feats, (0, 0, 0, need - feats.shape[0]))
            windows = torch.stack([feats[s : s + self.partial_frames] for s in starts])
            out.append(self._embed(windows).mean(0))
        return nn.functional.normalize(torch.stack(out), dim=1)
