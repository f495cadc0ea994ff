"""Other toolkits' released speaker encoders in speakerid: converted into speakerid checkpoints
(Resemblyzer's GE2E; WeSpeaker, 3D-Speaker and SpeechBrain models), or a SpeechBrain folder wrapped
for embedding. Everything is read from local files; nothing is downloaded from a model hub."""

from speakerid.pretrained.resemblyzer import (
    RESEMBLYZER,
    RESEMBLYZER_OVERRIDES,
    ResemblyzerConverter,
    convert_resemblyzer,
    resemblyzer_weights,
)
from speakerid.pretrained.speechbrain import SpeechBrainConverter, SpeechBrainEncoder

__all__ = [
    "RESEMBLYZER",
    "RESEMBLYZER_OVERRIDES",
    "ResemblyzerConverter",
    "SpeechBrainConverter",
    "SpeechBrainEncoder",
    "convert_resemblyzer",
    "resemblyzer_weights",
]
