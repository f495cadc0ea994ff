"""The Python API: a trained model in one's own code (``speakerid.load``), and the code path of
``speakerid-verify`` and ``speakerid-identify``.

A :class:`Model` embeds audio files or waveforms (whole, or as the mean of evenly spaced crops),
scores embeddings by cosine, verifies a pair at the model's operating point and identifies
recordings among enrolled speakers. docs/api.md shows it at work (its examples run as a test).
"""

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from omegaconf import DictConfig
from torch import Tensor
from torch.nn.functional import normalize

from speakerid.data.datasets import crop_start
from speakerid.data.speech import NoSpeechError, SpeechGate
from speakerid.errors import AudioError, ConfigError
from speakerid.inference import (
    OperatingPoint,
    embed_waveforms,
    load_system,
    operating_point,
    read_for_model,
    stored_thresholds,
)
from speakerid.metrics.identification import UNKNOWN, centroids, reject_unknown
from speakerid.scoring.calibration import Calibration, quality_features

__all__ = ["Decision", "Match", "Model", "Speakers", "load"]
log = logging.getLogger(__name__)

Audio = str | Path | np.ndarray | Tensor  # a file, or a mono waveform at the model's rate


class Decision(NamedTuple):
    """A verification: the cosine ``score``, the ``threshold`` it is compared with, whether the
    two recordings are of the ``same`` speaker (score above threshold), and the calibrated
    log-likelihood ratio ``llr`` (None without a kept calibration stored with the model)."""

    score: float
    threshold: float
    same: bool
    llr: float | None


class Match(NamedTuple):
    """One identified recording: the nearest enrolled ``speaker`` (``unknown`` when its score is
    not above the threshold) and that best ``score``."""

    speaker: str
    score: float


class Speakers(NamedTuple):
    """Enrolled speakers: their ``names`` and (C,D) speaker ``models`` (the L2-normalized mean
    of each one's normalized embeddings)."""

    names: list[str]
    models: Tensor


def load(
    path: str | Path,
    threshold: str | float | None = "stored",
    speech_gate: SpeechGate | None = None,
    max_seconds: float | None = None,
) -> "Model":
    """The model of a speakerid checkpoint, on the CPU, ready to embed.

    Args:
        path: a checkpoint of ``speakerid-train`` or of a converter (``speakerid-prepare``).
        threshold: the operating point of :meth:`Model.verify` and :meth:`Model.identify`:
            ``stored`` (the one ``speakerid-eval`` chose and stored with the model), ``eer``,
            ``far``, ``far@<rate>`` (stored ones), a number, or None (no threshold).
        speech_gate: refuse recordings without speech (:class:`NoSpeechError`); None: no check.
        max_seconds: refuse longer files from their header, before decoding; None: no limit.
    """
    system, config, checkpoint = load_system(path)
    try:
        point = operating_point(threshold, checkpoint, path)
    except ConfigError as err:
        if threshold != "stored" or stored_thresholds(checkpoint):
            raise
        point = OperatingPoint("none", None, str(err))  # an error only when one is needed
    return Model(system, config, checkpoint, point, speech_gate, max_seconds)


class Model:
    """A trained speaker encoder with its operating point (from :func:`load`)."""

    def __init__(
        self,
        system: torch.nn.Module,
        config: DictConfig,
        checkpoint: dict,
        point: OperatingPoint,
        speech_gate: SpeechGate | None = None,
        max_seconds: float | None = None,
    ) -> None:
        self.system, self.config, self.checkpoint = system, config, checkpoint
        self.operating_point = point
        self.speech_gate, self.max_seconds = speech_gate, max_seconds

    @property
    def sample_rate(self) -> int:
        """The rate waveforms must have (files are resampled to it)."""
        return int(self.config.data.sample_rate)

    @property
    def embed_dim(self) -> int:
        return int(self.system.backbone.embed_dim)

    @property
    def threshold(self) -> float:
        """The operating point's threshold (an error when there is none)."""
        if self.operating_point.threshold is None:
            raise ConfigError(f"no threshold: {self.operating_point.source}")
        return self.operating_point.threshold

    def embed(
        self, audio: Audio | Sequence[Audio], crops: int = 0, crop_seconds: float = 4.0
    ) -> Tensor:
        """L2-normalized embeddings: (D,) of one file or 1-D waveform, (N,D) of a sequence of
        them or of the rows of a 2-D waveform array; ``crops`` > 0: each the mean of ``crops``
        evenly spaced crops of ``crop_seconds`` (shorter audio repeated to fill a crop), as
        ``speakerid-eval crops=``."""
        single = isinstance(audio, (str, Path)) or (
            isinstance(audio, (np.ndarray, Tensor)) and audio.ndim == 1
        )
        items = [audio] if single else list(audio)
        embeddings = self._embed(
            [self.read(a, i) for i, a in enumerate(items)], crops, crop_seconds
        )
        return embeddings[0][0] if single else embeddings[0]

    def read(self, audio: Audio, index: int = 0) -> np.ndarray:
        """One recording as float32 mono samples at :attr:`sample_rate` (a file decoded, mixed
        down and resampled; a waveform checked), passed through the speech gate."""
        if isinstance(audio, (str, Path)):
            return read_for_model(audio, self.sample_rate, self.speech_gate, self.max_seconds)
        wav = np.asarray(audio.detach().cpu() if isinstance(audio, Tensor) else audio)
        name = f"waveform {index}"
        if wav.ndim != 1 or not np.issubdtype(wav.dtype, np.floating) or not len(wav):
            raise AudioError(f"{name}: a non-empty 1-D float waveform, got {wav.dtype} {wav.shape}")
        wav = wav.astype(np.float32)
        if not np.isfinite(wav).all():
            raise AudioError(f"{name}: holds NaN or infinite samples")
        problem = (
            None if self.speech_gate is None else self.speech_gate.problem(wav, self.sample_rate)
        )
        if problem:
            raise NoSpeechError(f"{name}: {NoSpeechError.SEPARATOR}{problem}")
        return wav

    def _embed(
        self, wavs: list[np.ndarray], crops: int = 0, crop_seconds: float = 4.0
    ) -> tuple[Tensor, Tensor]:
        """(N,D) normalized embeddings of waveforms and (N,) their norms before normalization."""
        if crops == 0:
            return embed_waveforms(self.system, wavs)
        size = int(crop_seconds * self.sample_rate)
        if isinstance(crops, bool) or not isinstance(crops, int) or crops < 0 or size < 1:
            raise ConfigError(f"crops={crops!r}, crop_seconds={crop_seconds!r}: 0 or more, above 0")
        pieces = []
        for wav in wavs:
            if len(wav) <= size:
                pieces += [np.resize(wav, size)] * crops
            else:
                starts = (crop_start(len(wav), size, crops, c) for c in range(crops))
                pieces += [wav[s : s + size] for s in starts]
        raw = self._raw(pieces).view(len(wavs), crops, -1).mean(dim=1)  # as embedding_table
        return normalize(raw, dim=1), raw.double().norm(dim=1)

    @torch.inference_mode()
    def _raw(self, pieces: list[np.ndarray]) -> Tensor:
        batch = torch.from_numpy(np.stack(pieces))  # equal lengths: batched exactly
        return self.system(batch, torch.full((len(pieces),), batch.shape[1])).float()

    @staticmethod
    def score(a: Tensor, b: Tensor) -> Tensor:
        """Cosine scores of embeddings: a 0-D tensor for (D,) and (D,), else the (N,M) matrix
        of (N,D) against (M,D)."""
        a, b = torch.as_tensor(a).float(), torch.as_tensor(b).float()
        scores = (
            normalize(a.reshape(-1, a.shape[-1]), dim=1)
            @ normalize(b.reshape(-1, b.shape[-1]), dim=1).T
        )
        return scores[0, 0] if a.ndim == 1 and b.ndim == 1 else scores

    def verify(self, a: Audio, b: Audio) -> Decision:
        """Whether two recordings are of the same speaker, at the model's operating point."""
        threshold = self.threshold  # before the embedding: no work for a missing threshold
        wavs = [self.read(x, i) for i, x in enumerate((a, b))]
        (ea, eb), norms = self._embed(wavs)
        score = float(ea @ eb)
        samples = torch.tensor([len(w) for w in wavs], dtype=torch.float64)
        return Decision(score, threshold, score > threshold, self.llr(score, norms, samples))

    def llr(self, score: float, norms: Tensor, samples: Tensor) -> float | None:
        """The stored calibration's log-likelihood ratio of one cosine trial (``norms`` and
        ``samples``: its two sides' raw embedding norms and lengths), or None: none stored, or
        one that did not beat no information and the raw scores on held-out trials."""
        return calibrated_llr(self.checkpoint, score, norms, samples)

    def enrol(self, enrolment: Mapping[str, Sequence[Audio]]) -> Speakers:
        """Speaker name -> its recordings, as :class:`Speakers`."""
        names = list(enrolment)
        if not names or any(isinstance(v, (str, Path)) or not len(v) for v in enrolment.values()):
            raise ConfigError("enrolment: speaker name -> a non-empty list of recordings")
        return self.speakers({name: self.embed(list(enrolment[name])) for name in names})

    @staticmethod
    def speakers(embeddings: Mapping[str, Tensor]) -> Speakers:
        """:class:`Speakers` from each speaker's (n,D) enrolment embeddings."""
        names = list(embeddings)
        stacked = torch.cat([torch.atleast_2d(embeddings[n]) for n in names])
        labels = torch.cat(
            [torch.full((len(torch.atleast_2d(embeddings[n])),), i) for i, n in enumerate(names)]
        )
        return Speakers(names, centroids(stacked, labels, len(names)))

    def identify(
        self, probes: Audio | Sequence[Audio], enrolment: Mapping[str, Sequence[Audio]] | Speakers
    ) -> list[Match]:
        """The nearest enrolled speaker of each probe recording (``unknown`` when the best score
        is not above the operating point's threshold; with ``threshold=None``, always the
        nearest). ``enrolment``: speaker name -> recordings, or :class:`Speakers`."""
        speakers = enrolment if isinstance(enrolment, Speakers) else self.enrol(enrolment)
        embeddings = torch.atleast_2d(self.embed(probes))
        return self.match(embeddings, speakers)

    def match(self, embeddings: Tensor, speakers: Speakers) -> list[Match]:
        """A :class:`Match` for each of (N,D) embeddings among ``speakers``."""
        threshold = self.operating_point.threshold
        scores = normalize(torch.atleast_2d(embeddings).float(), dim=1) @ speakers.models.T
        best_class, best = reject_unknown(scores, -float("inf") if threshold is None else threshold)
        return [
            Match("unknown" if c == UNKNOWN else speakers.names[c], float(s))
            for c, s in zip(best_class.tolist(), best.tolist(), strict=True)
        ]


def calibrated_llr(checkpoint: dict, score: float, norms, samples) -> float | None:
    """The stored calibration's log-likelihood ratio of one trial (cosine scoring), or None:
    none stored, or one that did not beat no information and the raw scores on held-out trials
    (said in a warning: an LLR from it would mislead more than the score)."""
    stored = stored_thresholds(checkpoint).get("calibration")
    if not stored:
        return None
    try:
        calibration = Calibration.from_dict(stored)
        problem = calibration.problem()
        one = (torch.tensor([score]), torch.tensor([0]), torch.tensor([1]), samples, norms)
        x = quality_features(*one, calibration.features)
        llr = None if problem else float(calibration.llr(x)[0])
    except (KeyError, TypeError, ValueError) as err:  # a damaged or hand-made entry
        problem, llr = f"unreadable: {type(err).__name__}: {err}", None
    if problem:
        log.warning(
            "no llr: the calibration stored with the model is not used (%s); "
            "`speakerid-eval ckpt_path=...` calibrates it anew",
            problem,
        )
    return llr
