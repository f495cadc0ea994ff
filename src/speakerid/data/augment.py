"""Waveform augmentation applied to training crops in the DataLoader workers."""

import numpy as np
from scipy import signal

from speakerid.data.corpora.channel import coloured_noise, random_channel
from speakerid.errors import ConfigError

GENERATED = "generated"  # a root chosen to be generated noise or rooms (None: left unset)


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


def _source_files(reader, augment, categories: list[str]) -> dict[str, list]:
    """An augmentation source read as shipped (cached and validated like a corpus; other rates
    and channel counts converted while reading): category -> files."""
    corpus = reader(
        augment.root,
        augment.cache_dir,
        augment.sample_rate,
        on_bad_file="skip",
        policy={"wrong_rate": "resample", "multichannel": "downmix"},
    )
    return corpus.files_by_category(categories)


def _snr_mix(wav: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    speech = float(np.mean(wav**2)) + 1e-12
    scale = np.sqrt(speech / ((float(np.mean(noise**2)) + 1e-12) * 10 ** (snr_db / 10)))
    return wav + scale * noise


def _fit(x: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``length`` span of x (repeated when shorter)."""
    if len(x) < length:
        x = np.resize(x, length)
    start = int(rng.integers(len(x) - length + 1))
    return x[start : start + length]


def _peak_normalize(x: np.ndarray) -> np.ndarray:
    return (x / (float(np.max(np.abs(x))) + 1e-4)).astype(np.float32)


def _peak_limit(x: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    return (x / peak * 0.95 if peak > 0.95 else x).astype(np.float32)


class AdditiveNoise:
    """Additive noise at a random SNR from a noise collection (MUSAN's layout: ``noise/``,
    ``music/``, ``speech/`` — several speech files at once make babble), or generated coloured
    noise when there is no folder.

    Args:
        root: a MUSAN folder, or ``generated`` (or None, unset: a VoxCeleb run refuses it) for
            generated noise (white to brown).
        categories: MUSAN categories to draw from, each with its SNR range in dB.
        babble: how many speech files are mixed together for ``speech`` (3-7 in Kaldi's recipe).
        probability: chance that a crop gets noise.
        cache_dir: where the MUSAN manifest is cached (validated once like a corpus).
        pick: ``category``: a category uniformly, then a file of it (Kaldi); ``file``: a file
            uniformly over all categories, so categories weigh by their file counts (WeSpeaker).
        normalize: ``limit``: scale down only past a 0.95 peak; ``peak``: every output to peak 1
            (WeSpeaker divides by max|x| + 1e-4).

    Example:
        >>> augment = AdditiveNoise(probability=1.0)  # generated noise
        >>> augment(np.ones(1600, np.float32) * 0.1, np.random.default_rng(0)).shape
        (1600,)
    """

    def __init__(
        self,
        root: str | None = None,
        categories: dict[str, list[float]] | None = None,
        babble: tuple[int, int] | list[int] = (3, 7),
        sample_rate: int = 16000,
        probability: float = 0.6,
        cache_dir: str = "data/cache",
        generated_snr: tuple[float, float] | list[float] = (5.0, 20.0),
        pick: str = "category",
        normalize: str = "limit",
    ) -> None:
        if pick not in ("category", "file") or normalize not in ("limit", "peak"):
            raise ConfigError(
                f"AdditiveNoise: pick category|file, normalize limit|peak: {pick}, {normalize}"
            )
        self.pick, self.normalize = pick, normalize
        self.root = None if root == GENERATED else root
        self.categories = dict(
            categories or {"noise": [0, 15], "music": [5, 15], "speech": [13, 20]}
        )
        self.babble = tuple(babble)
        self.sample_rate = sample_rate
        self.probability = probability
        self.cache_dir = cache_dir
        self.generated_snr = tuple(generated_snr)
        self._files: dict[str, list] | None = None

    def files(self) -> dict[str, list]:
        """Category -> noise files (read once per process, from the cached MUSAN manifest)."""
        if self._files is None:
            from speakerid.data.corpora.noise import MusanCorpus

            self._files = _source_files(MusanCorpus, self, list(self.categories))
            empty = [c for c, f in self._files.items() if not f]
            if empty:
                raise ValueError(f"{self.root}: no {', '.join(empty)} files for AdditiveNoise")
        return self._files

    def __call__(self, wav: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.uniform() >= self.probability:
            return wav
        finish = _peak_limit if self.normalize == "limit" else _peak_normalize
        if self.root is None:
            noise = coloured_noise(len(wav), float(rng.uniform(0, 2)), rng)
            return finish(_snr_mix(wav, noise, float(rng.uniform(*self.generated_snr))))
        from speakerid.data.audio import read_audio

        files = self.files()
        category = self._category(files, rng)
        count = int(rng.integers(self.babble[0], self.babble[1] + 1)) if category == "speech" else 1
        noise = np.zeros(len(wav), np.float32)
        for _ in range(count):
            path = files[category][int(rng.integers(len(files[category])))]
            noise += _fit(read_audio(path, self.sample_rate, convert=True), len(wav), rng)
        low, high = self.categories[category]
        return finish(_snr_mix(wav, noise, float(rng.uniform(low, high))))

    def _category(self, files: dict[str, list], rng: np.random.Generator) -> str:
        names = list(self.categories)
        if self.pick == "category":
            return names[int(rng.integers(len(names)))]
        counts = np.array([len(files[c]) for c in names], dtype=np.float64)
        return names[int(rng.choice(len(names), p=counts / counts.sum()))]


class Reverb:
    """Reverberation by convolution with a room impulse response: from RIRS_NOISES (simulated
    and/or real RIRs), or simulated (exponentially decaying noise, RT60 0.15-0.8 s) without a
    folder (``root``: None or ``generated``). The RIR is energy-normalized; the output is
    aligned on its direct path (``align=False``: the convolution's first samples, as WeSpeaker)
    and peak-limited (``normalize="peak"``: every output to peak 1, as WeSpeaker).

    Example:
        >>> augment = Reverb(probability=1.0)
        >>> augment(np.ones(1600, np.float32) * 0.1, np.random.default_rng(0)).shape
        (1600,)
    """

    def __init__(
        self,
        root: str | None = None,
        categories: tuple[str, ...] | list[str] = ("simulated_rir", "real_rir"),
        sample_rate: int = 16000,
        probability: float = 0.5,
        cache_dir: str = "data/cache",
        align: bool = True,
        normalize: str = "limit",
    ) -> None:
        if normalize not in ("limit", "peak"):
            raise ConfigError(f"Reverb: normalize limit|peak, got {normalize!r}")
        self.align, self.normalize = align, normalize
        self.root = None if root == GENERATED else root
        self.categories = list(categories)
        self.sample_rate = sample_rate
        self.probability = probability
        self.cache_dir = cache_dir
        self._files: list | None = None

    def rir(self, rng: np.random.Generator) -> np.ndarray:
        if self.root is None:
            rt60 = rng.uniform(0.15, 0.8)
            t = np.arange(int(rt60 * self.sample_rate)) / self.sample_rate
            rir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
            rir[0] = 1.0 / rng.uniform(0.3, 1.0)
        else:
            from speakerid.data.audio import read_audio
            from speakerid.data.corpora.noise import RirCorpus

            if self._files is None:
                by_category = _source_files(RirCorpus, self, self.categories)
                self._files = [p for c in self.categories for p in by_category[c]]
                if not self._files:
                    raise ValueError(f"{self.root}: no {self.categories} impulse responses")
            rir = read_audio(
                self._files[int(rng.integers(len(self._files)))], self.sample_rate, convert=True
            )
        return rir / (np.sqrt(np.sum(rir**2)) + 1e-12)

    def __call__(self, wav: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.uniform() >= self.probability:
            return wav
        rir = self.rir(rng)
        delay = int(np.argmax(np.abs(rir))) if self.align else 0
        out = signal.oaconvolve(wav, rir)[delay : delay + len(wav)]
        return _peak_limit(out) if self.normalize == "limit" else _peak_normalize(out)


class SpeedPerturb:
    """Speed perturbation: the crop resampled by a factor drawn from ``factors`` (pitch and tempo
    change together, as in Kaldi's recipe), then cut or repeated back to its length.

    Example:
        >>> SpeedPerturb(factors=(0.9,))(np.ones(1600, np.float32), np.random.default_rng(0)).shape
        (1600,)
    """

    def __init__(self, factors: tuple[float, ...] | list[float] = (0.9, 1.0, 1.1)) -> None:
        self.factors = list(factors)

    def __call__(self, wav: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        factor = self.factors[int(rng.integers(len(self.factors)))]
        if factor == 1.0:
            return wav
        up, down = 100, round(100 * factor)  # playing 'factor' times faster
        out = signal.resample_poly(wav, up, down).astype(np.float32)
        return _fit(out, len(wav), rng) if len(out) >= len(wav) else np.resize(out, len(wav))


class OneOf:
    """With ``probability``, one of several augmentations, chosen uniformly (WeSpeaker's
    ``add_reverb_noise``: reverberation or noise, ``aug_prob`` 0.6); the steps' own
    probabilities still apply (set them to 1.0 for the WeSpeaker chain).

    Example:
        >>> one = OneOf([Reverb(probability=1.0), AdditiveNoise(probability=1.0)], probability=1.0)
        >>> one(np.ones(1600, np.float32) * 0.1, np.random.default_rng(0)).shape
        (1600,)
    """

    def __init__(self, steps: list, probability: float = 1.0) -> None:
        if not steps:
            raise ConfigError("OneOf needs at least one augmentation")
        self.steps = list(steps)
        self.probability = probability

    def __call__(self, wav: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.uniform() >= self.probability:
            return wav
        return self.steps[int(rng.integers(len(self.steps)))](wav, rng)


class Compose:
    """Several waveform augmentations, applied in order."""

    def __init__(self, steps: list) -> None:
        self.steps = list(steps)

    def __call__(self, wav: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for step in self.steps:
            wav = step(wav, rng)
        return wav
