"""Loss heads: ``(embeddings (B,D), labels (B,)) -> HeadOutput(loss, logits | None)``."""

from speakerid.losses.aam_softmax import AamSoftmax
from speakerid.losses.softmax import Softmax

__all__ = ["AamSoftmax", "Softmax"]
