"""speakerid: a Lightning + Hydra platform for speaker recognition.

``speakerid.load(path)`` gives a trained model to one's own code (:mod:`speakerid.api`,
docs/api.md); it is imported on first use, so ``import speakerid`` stays light (no torch, no
Lightning).
"""

__version__ = "0.1.0"
__all__ = ["Decision", "Match", "Model", "Speakers", "load"]


def __getattr__(name: str):
    if name in __all__:
        from speakerid import api

        return getattr(api, name)
    raise AttributeError(f"module 'speakerid' has no attribute {name!r}")
