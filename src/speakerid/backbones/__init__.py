"""Speaker encoders: ``(B,T,F), (B,) frames -> (B,D)``; each exposes ``embed_dim``."""

from speakerid.backbones.ecapa_tdnn import EcapaTdnn

__all__ = ["EcapaTdnn"]
