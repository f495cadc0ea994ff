"""Other toolkits' released speaker encoders in speakerid: converted into speakerid checkpoints
(Resemblyzer's GE2E; WeSpeaker, 3D-Speaker and SpeechBrain models), or a SpeechBrain folder wrapped
for embedding. Everything is read from local files; nothing is downloaded from a model hub."""

from typing import Protocol, runtime_checkable

from torch import nn

from speakerid.pretrained.resemblyzer import (
    RESEMBLYZER,
    RESEMBLYZER_OVERRIDES,
    ResemblyzerConverter,
    convert_resemblyzer,
    resemblyzer_weights,
)
from speakerid.pretrained.speakerlab import SpeakerlabConverter
from speakerid.pretrained.speechbrain import SpeechBrainConverter, SpeechBrainEncoder
from speakerid.pretrained.wespeaker import WeSpeakerConverter


@runtime_checkable
class InPlaceSource(Protocol):
    """A source that ``speakerid-embed`` can use without converting it: ``encoder()`` gives
    ``(model (wav, lengths) -> (B,D), description, sha256 of its weights or None)``."""

    def encoder(self) -> tuple[nn.Module, str, str | None]: ...


__all__ = [
    "RESEMBLYZER",
    "RESEMBLYZER_OVERRIDES",
    "InPlaceSource",
    "ResemblyzerConverter",
    "SpeakerlabConverter",
    "SpeechBrainConverter",
    "SpeechBrainEncoder",
    "WeSpeakerConverter",
    "convert_resemblyzer",
    "resemblyzer_weights",
]
