"""LightningModules that wire front end, backbone, loss head and optimizers."""

from speakerid.systems.encoder import EncoderModule

__all__ = ["EncoderModule"]
