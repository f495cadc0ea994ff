"""Embedding-enhancement networks: ``(B,D) -> (B,D)``."""

from speakerid.enhancers.linear_net import LinearNet

__all__ = ["LinearNet"]
