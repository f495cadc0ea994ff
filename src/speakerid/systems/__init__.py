"""LightningModules that wire front end, backbone or enhancer, loss head and optimizers."""

from speakerid.systems.encoder import EncoderModule
from speakerid.systems.enhancer import EnhancerModule

__all__ = ["EncoderModule", "EnhancerModule"]
