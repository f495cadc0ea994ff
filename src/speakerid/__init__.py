"""speakerid: a Lightning + Hydra platform for speaker recognition."""

__version__ = "0.1.0"
