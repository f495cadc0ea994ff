"""Loss heads: ``(embeddings (B,D), labels) -> HeadOutput(loss, logits | None)``."""

from speakerid.losses.aam_softmax import AamSoftmax
from speakerid.losses.softmax import Softmax
from speakerid.losses.targets import (
    CosineTarget,
    DomainAdaptation,
    Mae,
    Mse,
    TripletCosine,
    WeightedSum,
)

__all__ = [
    "AamSoftmax",
    "CosineTarget",
    "DomainAdaptation",
    "Mae",
    "Mse",
    "Softmax",
    "TripletCosine",
    "WeightedSum",
]
