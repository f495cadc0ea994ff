"""Loss heads: ``(embeddings (B,D), labels) -> HeadOutput(loss, logits | None)``."""

from speakerid.losses.aam_softmax import AamSoftmax
from speakerid.losses.center import ContrastiveCenter
from speakerid.losses.margins import AmSoftmax, MarginSchedule, MarginWarmup
from speakerid.losses.metric import AngularPrototypical, Ge2e, Triplet
from speakerid.losses.multitask import MultiTask
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
    "AmSoftmax",
    "AngularPrototypical",
    "ContrastiveCenter",
    "CosineTarget",
    "DomainAdaptation",
    "Ge2e",
    "Mae",
    "MarginSchedule",
    "MarginWarmup",
    "Mse",
    "MultiTask",
    "Softmax",
    "Triplet",
    "TripletCosine",
    "WeightedSum",
]
