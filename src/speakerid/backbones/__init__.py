"""Speaker encoders: ``(B,T,F), (B,) frames -> (B,D)``; each exposes ``embed_dim``."""

from speakerid.backbones.audio_encoder import AudioEncoder, AudioEncoderRaw
from speakerid.backbones.campplus import CamPlusPlus
from speakerid.backbones.ecapa_tdnn import EcapaTdnn
from speakerid.backbones.ecapa_wespeaker import EcapaWespeaker
from speakerid.backbones.eres2net import ERes2NetV2
from speakerid.backbones.ge2e_lstm import Ge2eLstm
from speakerid.backbones.projected import Projected
from speakerid.backbones.redimnet import ReDimNet2
from speakerid.backbones.rescnn import ResCnn
from speakerid.backbones.resnet import ResNet18, ResNet34
from speakerid.backbones.xvector import XVector

__all__ = [
    "AudioEncoder",
    "AudioEncoderRaw",
    "CamPlusPlus",
    "ERes2NetV2",
    "EcapaTdnn",
    "EcapaWespeaker",
    "Ge2eLstm",
    "Projected",
    "ReDimNet2",
    "ResCnn",
    "ResNet18",
    "ResNet34",
    "XVector",
]
