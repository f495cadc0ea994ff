"""Front ends: nn.Modules that turn waveforms into features on the batch's device."""

from speakerid.features.augment import MelNoise, SpecAugment
from speakerid.features.fbank import KaldiFbank
from speakerid.features.ge2e import Ge2eMel
from speakerid.features.spectral import LogMel, Mfcc, SpectrogramImage, SpeechbrainFbank, Waveform
from speakerid.features.tfmel import TfMel
from speakerid.features.vad import EnergyVad, SplVad, VadFrontEnd

__all__ = [
    "EnergyVad",
    "Ge2eMel",
    "KaldiFbank",
    "LogMel",
    "MelNoise",
    "Mfcc",
    "SpecAugment",
    "SpectrogramImage",
    "SpeechbrainFbank",
    "SplVad",
    "TfMel",
    "VadFrontEnd",
    "Waveform",
]
