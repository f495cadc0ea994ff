"""Waveform augmentation applied to training crops in the DataLoader workers."""

import numpy as np

from speakerid.data.corpora.channel import random_channel


class ChannelAugment:
    """A random recording channel per crop: equalizer and band limit, coloured noise, reverberation.

    Generated noise and simulated rooms stand in for MUSAN and RIRS_NOISES, the usual VoxCeleb
    recipe (Snyder et al., "X-vectors: Robust DNN Embeddings for Speaker Recognition", 2018).
    The channel family is the one that records the synthetic corpus' sessions, so on that corpus
    this augmentation is well matched; on real data it is generic.

    Args:
        sample_rate: rate of the crops.
        probability: chance that a crop is augmented at all.
        strength: scales every effect, like the corpus' ``difficulty``.

    Example:
        >>> augment = ChannelAugment(probability=1.0)
        >>> augment(np.zeros(16000, np.float32) + 0.1, np.random.default_rng(0)).shape
        (16000,)
    """

    def __init__(
        self, sample_rate: int = 16000, probability: float = 0.6, strength: float = 1.0
    ) -> None:
        self.sample_rate = sample_rate
        self.probability = probability
        self.strength = strength

    def __call__(self, wav: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.uniform() >= self.probability:
            return wav
        return random_channel(rng, self.sample_rate, self.strength).apply(wav, rng)
