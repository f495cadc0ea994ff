"""A trained model outside training: load it from a checkpoint, embed audio files, keep its
operating thresholds.

Checkpoints load with ``weights_only=True`` (tensors and plain containers, no pickle); the model
is rebuilt from the resolved config every speakerid checkpoint carries.
"""

import logging
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
import torch
import torchaudio
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from speakerid.callbacks import nonfinite_weights
from speakerid.data.audio import audio_info
from speakerid.data.speech import NoSpeechError, SpeechGate
from speakerid.errors import AudioError, ConfigError
from speakerid.metrics.bootstrap import far_point
from speakerid.systems.encoder import EncoderModule
from speakerid.trusted import check_trusted
from speakerid.utils.io import atomic_path

log = logging.getLogger(__name__)


def load_checkpoint(path: str | Path) -> dict:
    """Load a speakerid checkpoint safely (``weights_only``: tensors and plain containers only)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: checkpoint not found")
    _check_integrity(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        raise ConfigError(
            f"{path}: not a loadable checkpoint ({type(err).__name__}: {str(err)[:200]})"
        ) from None
    if (
        not isinstance(checkpoint, dict)
        or "speakerid" not in checkpoint
        or "state_dict" not in checkpoint
    ):
        raise ConfigError(f"{path}: not a speakerid checkpoint (it holds no stored run config)")
    return checkpoint


def _check_integrity(path: Path) -> None:
    """Refuse a damaged checkpoint: torch's reader does not check the zip archive's CRC-32s, so
    flipped bytes inside a tensor load as wrong weights. Every member is read and checked (about
    a second per GB)."""
    if not zipfile.is_zipfile(path):
        return  # a legacy pickle file: torch.load judges it
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise ConfigError(f"{path}: damaged checkpoint ({err}); use another copy") from None
    if bad is not None:
        raise ConfigError(
            f"{path}: damaged checkpoint (checksum mismatch in {bad}); use another copy"
        )


def load_system(path: str | Path) -> tuple[torch.nn.Module, DictConfig, dict]:
    """Rebuild the trained speaker encoder of a checkpoint (an enhancer's is refused).

    Returns:
        ``(system, run_config, checkpoint)``, the system in eval mode on the CPU.
    """
    checkpoint = load_checkpoint(path)
    broken = nonfinite_weights(checkpoint["state_dict"])
    if broken:
        raise ConfigError(
            f"{path}: NaN or infinite weights ({', '.join(broken[:3])}): the run diverged; "
            "use an earlier checkpoint"
        )
    stored = checkpoint["speakerid"].get("config")
    if not isinstance(stored, dict) or not isinstance(stored.get("system"), dict):
        raise ConfigError(f"{path}: not a speakerid checkpoint (its stored config has no system)")
    run_cfg = OmegaConf.create(check_trusted(upgraded_config(stored), path))
    system = instantiate(run_cfg.system)
    if not isinstance(system, EncoderModule):
        raise ConfigError(
            f"{path}: holds {type(system).__name__}, not a speaker encoder: this tool needs a "
            "checkpoint of speakerid-train (an enhancer from speakerid-enhance works on stores)"
        )
    try:
        system.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise ConfigError(
            f"{path}: weights do not fit the stored config ({str(err)[:300]})"
        ) from None
    return system.eval(), run_cfg, checkpoint


# Data settings that moved into groups (data.eval.*, data.shards.*): old name -> new path.
MOVED_DATA_KEYS = {
    "eval_batch_size": ("eval", "batch_size"),
    "eval_max_seconds": ("eval", "max_seconds"),
    "eval_crops": ("eval", "crops"),
    "eval_crop_seconds": ("eval", "crop_seconds"),
    "shards": ("shards", "dir"),
    "shard_mode": ("shards", "mode"),
    "shard_buffer": ("shards", "buffer"),
}


def upgraded_config(config: dict) -> dict:
    """A checkpoint's stored config in today's layout: checkpoints written before the data
    settings were grouped still evaluate (their flat ``data.eval_*``/``data.shard*`` keys move)."""
    data = config.get("data")
    if not isinstance(data, dict) or isinstance(data.get("eval"), dict):
        return config
    data = dict(data)
    for old, (group, key) in MOVED_DATA_KEYS.items():
        if old in data and not isinstance(data[old], dict):
            value = data.pop(old)
            data[group] = {**(data.get(group) or {}), key: value}
    return {**config, "data": data}


def stored_thresholds(checkpoint: dict) -> dict:
    """The operating thresholds saved with a model ({} when none were saved)."""
    return dict(checkpoint["speakerid"].get("thresholds") or {})


def save_thresholds(path: str | Path, thresholds: dict) -> None:
    """Store operating thresholds in a checkpoint (rewritten atomically)."""
    checkpoint = load_checkpoint(path)
    checkpoint["speakerid"]["thresholds"] = thresholds
    try:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)
    except OSError as err:
        log.warning("thresholds not saved in %s: %s", path, err)


def read_for_model(
    path: str | Path,
    sample_rate: int,
    gate: SpeechGate | None = None,
    max_seconds: float | None = None,
) -> np.ndarray:
    """A user's audio file as float32 mono at ``sample_rate``: multi-channel files are averaged
    and other rates resampled (each logged), unlike corpus files, which must already fit. With a
    ``gate``, a file without speech (silence, a steady noise or tone, a noise without a voice's
    pitch, too short) is refused (:class:`~speakerid.data.speech.NoSpeechError`); a file longer
    than ``max_seconds`` is refused from its header, before it is decoded."""
    info = audio_info(path)
    if info.frames == 0:
        raise AudioError(f"{path}: empty audio file")
    if max_seconds is not None and (
        isinstance(max_seconds, bool)
        or not isinstance(max_seconds, (int, float))
        or max_seconds <= 0
    ):
        raise ConfigError(f"max_seconds={max_seconds!r}: a number of seconds above 0, or null")
    seconds = info.frames / info.samplerate
    if max_seconds is not None and seconds > max_seconds:  # from the header, before decoding
        raise AudioError(
            f"{path}: {seconds:.0f} s long, over max_seconds={max_seconds:g} (a file is decoded "
            "and embedded whole): cut it into parts, or raise max_seconds"
        )
    wav, rate = sf.read(str(path), dtype="float32", always_2d=True)
    if wav.shape[1] > 1:
        log.info("%s: %d channels averaged to mono", path, wav.shape[1])
    mono = torch.from_numpy(wav.mean(axis=1))
    if rate < sample_rate:  # shown: the model hears nothing above rate / 2
        log.warning(
            "%s: upsampled from %d Hz to %d Hz (no content above %d Hz)",
            path,
            rate,
            sample_rate,
            rate // 2,
        )
    elif rate > sample_rate:
        log.info("%s: resampled from %d Hz to %d Hz", path, rate, sample_rate)
    if rate != sample_rate:
        mono = torchaudio.functional.resample(mono, rate, sample_rate)
    if not torch.isfinite(mono).all():
        raise AudioError(f"{path}: holds NaN or infinite samples")
    problem = None if gate is None else gate.problem(mono.numpy(), sample_rate)
    if problem:
        raise NoSpeechError(f"{path}: {NoSpeechError.SEPARATOR}{problem}")
    return mono.numpy()


def embed_files(
    system: torch.nn.Module,
    paths: Sequence[str | Path],
    sample_rate: int,
    batch_size: int = 1,
    gate: SpeechGate | None = None,
    quality: bool = False,
    max_seconds: float | None = None,
) -> Tensor | tuple[Tensor, Tensor, Tensor]:
    """(N,D) L2-normalized embeddings of whole files (each checked by ``gate`` when given);
    with ``quality``, also each file's embedding norm before normalization and its samples
    (the quality measures of :mod:`speakerid.scoring.calibration`).

    With ``batch_size`` > 1 files of similar length share a batch; the backbones mask the
    padding (tests/integration/test_batch_invariance.py), so the embeddings are those of one at
    a time, to float rounding.
    """
    wavs = [read_for_model(p, sample_rate, gate, max_seconds) for p in paths]
    embeddings, norms = embed_waveforms(system, wavs, batch_size)
    if quality:
        return embeddings, norms, torch.tensor([len(w) for w in wavs], dtype=torch.float64)
    return embeddings


@torch.inference_mode()
def embed_waveforms(
    system: torch.nn.Module, wavs: Sequence[np.ndarray], batch_size: int = 1
) -> tuple[Tensor, Tensor]:
    """(N,D) L2-normalized embeddings of mono waveforms at the model's rate, and (N,) the norms
    of the embeddings before normalization (float64). Waveforms of similar length share a batch
    of ``batch_size`` (1: exact, no zero padding seen by the backbone)."""
    order = sorted(range(len(wavs)), key=lambda i: -len(wavs[i]))
    out: list[Tensor] = [torch.empty(0)] * len(wavs)
    norms = torch.zeros(len(wavs), dtype=torch.float64)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        lengths = torch.tensor([len(wavs[i]) for i in chunk])
        batch = torch.zeros(len(chunk), int(lengths.max()))
        for row, i in enumerate(chunk):
            batch[row, : len(wavs[i])] = torch.as_tensor(wavs[i])
        raw = system(batch, lengths).float()
        embeddings = torch.nn.functional.normalize(raw, dim=1)
        for row, i in enumerate(chunk):
            out[i] = embeddings[row]
            norms[i] = float(raw[row].norm())
    return (torch.stack(out) if out else torch.empty(0)), norms


class OperatingPoint(NamedTuple):
    """The threshold a decision uses, and where it comes from.

    ``name``: ``eer``, ``far@<rate>`` (stored with the model by ``speakerid-eval``), ``given``
    (a number) or ``none`` (no threshold); ``source`` says it in words for the console."""

    name: str
    threshold: float | None
    source: str

    def describe(self) -> str:
        if self.threshold is None:
            return f"operating point: {self.source}"
        return f"operating point: {self.name} = {self.threshold:.4f} ({self.source})"


def stored_points(stored: dict) -> dict[str, float]:
    """Operating-point name -> threshold, from a checkpoint's stored thresholds (every name
    ``threshold=`` accepts: ``eer``, ``far`` and ``far@<rate>``)."""
    points = {k: stored[k] for k in ("eer", "far") if k in stored}
    if "far" in stored and "far_target" in stored:
        points[far_point(float(stored["far_target"]))] = stored["far"]
    for far, value in (stored.get("far_targets") or {}).items():
        points[far_point(float(far))] = value
    return points


def operating_point(choice, checkpoint: dict, path: str | Path) -> OperatingPoint:
    """The decision threshold ``threshold=`` names: ``stored`` (the operating point
    ``speakerid-eval`` chose and stored with the model; the EER one for a model stored before
    there was a choice), ``eer``, ``far`` or ``far@<rate>`` of those stored, a number, or None
    (``null``: no threshold).

    A cosine score lies in [-1, 1] and a trial is accepted when its score is above the
    threshold, so a threshold of -1 or less accepts everything, 1 or more nothing, and NaN
    (every comparison false) nothing: each would force the verdict, and is refused.
    """
    if choice is None:
        return OperatingPoint("none", None, "no threshold (closed set)")
    named = isinstance(choice, str) and (
        choice in ("stored", "eer", "far") or choice.startswith("far@")
    )
    if isinstance(choice, bool) or not (named or isinstance(choice, (int, float))):
        raise ConfigError(
            f"threshold must be stored, eer, far, far@<rate>, null or a number, got {choice!r}"
        )
    if not isinstance(choice, str):
        return OperatingPoint("given", _cosine_threshold(choice, f"threshold={choice}"), "given")
    stored = stored_thresholds(checkpoint)
    points = stored_points(stored)
    name = str(stored.get("operating_point", "eer")) if choice == "stored" else choice
    if not points:
        raise ConfigError(
            f"{path} holds no stored thresholds: run `speakerid-eval ckpt_path={path}` once "
            "(it stores them), or give threshold=<number>"
        )
    if name not in points:
        raise ConfigError(
            f"threshold={choice}: {path} stores {', '.join(sorted(points))} (or give stored, "
            "null or a number)"
        )
    label = f"{path}: its stored {name} threshold ({points[name]})"
    return OperatingPoint(name, _cosine_threshold(points[name], label), _origin(stored, name))


def _origin(stored: dict, name: str) -> str:
    """Where a stored threshold comes from, in words."""
    words = "stored with the model"
    if stored.get("trials"):
        words += f", from {stored['trials']}"
    interval = (stored.get("intervals") or {}).get(name)
    if interval:
        words += f"; 95 % interval over speakers {interval[0]:.4f} to {interval[1]:.4f}"
    if (stored.get("enough_trials") or {}).get(name) is False:
        words += "; too few trials behind it"
    return words


def _cosine_threshold(value, label: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1 < value < 1:
        raise ConfigError(
            f"{label}: must be a number above -1 and below 1 (cosine scores lie in "
            "[-1, 1]; a threshold outside decides every trial alike)"
        )
    return float(value)


def resolve_threshold(choice, checkpoint: dict, path: str | Path) -> float | None:
    """The number of :func:`operating_point` (None for ``null``)."""
    return operating_point(choice, checkpoint, path).threshold
