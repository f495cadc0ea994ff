"""The typed contracts every plug-in honours, so any loss head works with any backbone or enhancer.

Shapes: B batch, S samples, T frames, F features, D embedding size, C classes.
"""

from typing import NamedTuple, Protocol, runtime_checkable

from torch import Tensor

# Labels a loss head receives: (B,) speaker classes, or (B,K) whose columns are these.
SPEAKER, SESSION, OTHER = 0, 1, 2


def label_column(labels: Tensor, column: int = SPEAKER) -> Tensor:
    """One column of (B,K) labels; (B,) labels are the speaker column itself."""
    if labels.ndim == 1:
        if column != SPEAKER:
            raise ValueError("this head needs (B,3) labels (speaker, session, other), got (B,)")
        return labels
    return labels[:, column]


class HeadOutput(NamedTuple):
    """What a loss head returns: the loss, and class logits when the head has a classifier."""

    loss: Tensor
    logits: Tensor | None = None


@runtime_checkable
class FrontEnd(Protocol):
    """Waveforms to features: ``(B,S), (B,) samples -> (B,T,F), (B,) frames``."""

    num_mels: int

    def __call__(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]: ...


@runtime_checkable
class Backbone(Protocol):
    """Features to embeddings: ``(B,T,F), (B,) frames -> (B,D)``, with ``D = embed_dim``."""

    embed_dim: int

    def __call__(self, features: Tensor, lengths: Tensor | None = None) -> Tensor: ...


@runtime_checkable
class Enhancer(Protocol):
    """Embeddings to enhanced embeddings: ``(B,D) -> (B,D')``, with ``D' = embed_dim``."""

    embed_dim: int

    def __call__(self, embeddings: Tensor) -> Tensor: ...


@runtime_checkable
class LossHead(Protocol):
    """``(embeddings (B,D), labels) -> HeadOutput``. A head owns its parameters.

    ``labels`` is (B,) speaker classes, or (B,K) with the speaker in column :data:`SPEAKER`
    (the embedding data module adds :data:`SESSION` and :data:`OTHER`); every head reads the
    columns it needs through :func:`label_column`.
    """

    def __call__(self, embeddings: Tensor, labels: Tensor) -> HeadOutput: ...
