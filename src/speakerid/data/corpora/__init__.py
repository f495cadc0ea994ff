"""Corpus readers: each has ``root``, ``prepare()``, ``manifest()`` and ``trial_path(name)``."""

from speakerid.data.corpora.synthetic import SyntheticCorpus
from speakerid.data.corpora.voxceleb import VoxCelebCorpus

__all__ = ["SyntheticCorpus", "VoxCelebCorpus"]
