"""Corpus readers: each has ``root``, ``prepare()``, ``manifest()`` and ``trial_path(name)``."""

from speakerid.data.corpora.combined import CombinedCorpus
from speakerid.data.corpora.commonvoice import CommonVoiceCorpus
from speakerid.data.corpora.folder import FolderCorpus
from speakerid.data.corpora.noise import MusanCorpus, RirCorpus
from speakerid.data.corpora.synthetic import SyntheticCorpus
from speakerid.data.corpora.voxceleb import VoxCelebCorpus
from speakerid.data.corpora.voxforge import VoxForgeCorpus

__all__ = [
    "CombinedCorpus",
    "CommonVoiceCorpus",
    "FolderCorpus",
    "MusanCorpus",
    "RirCorpus",
    "SyntheticCorpus",
    "VoxCelebCorpus",
    "VoxForgeCorpus",
]
