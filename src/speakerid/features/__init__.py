"""Front ends: nn.Modules that turn waveforms into features on the batch's device."""

from speakerid.features.fbank import KaldiFbank

__all__ = ["KaldiFbank"]
