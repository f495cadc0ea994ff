"""Enrolment for the tools that identify (``speakerid-identify``, ``-enroll``, ``-search``): the
files named on a command line, enrolment folders, each speaker's embeddings, and a voiceprint
store opened with its own model."""

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from speakerid.api import Model, Speakers, load
from speakerid.data.speech import NoSpeechError, SpeechGate
from speakerid.errors import AudioError, ConfigError
from speakerid.voiceprints import RESERVED, VoiceprintStore, weights_sha256

log = logging.getLogger(__name__)
Embed = Callable[[Path], Tensor]  # a file -> its (1,D) embedding


def audio_files(folder: Path, extensions: list[str]) -> list[Path]:
    suffixes = {f".{e.lower().lstrip('.')}" for e in extensions}
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def enrolment_folders(enrol_dir: Path, extensions: list[str]) -> dict[str, list[Path]]:
    """Speaker name -> its enrolment files, one speaker per sub-folder of ``enrol_dir``."""
    if not enrol_dir.is_dir():
        raise ConfigError(f"{enrol_dir}: enrolment folder not found")
    enrolment = {}
    for folder in sorted(p for p in enrol_dir.iterdir() if p.is_dir()):
        if folder.name in RESERVED:
            raise ConfigError(
                f"{folder}: a speaker cannot be called {folder.name!r}, the label of files "
                "no enrolled speaker matches: rename the folder"
            )
        files = audio_files(folder, extensions)
        if not files:
            raise ConfigError(f"{folder}: no audio files ({', '.join(extensions)}) to enrol")
        enrolment[folder.name] = files
    if not enrolment:
        raise ConfigError(f"{enrol_dir}: no speaker sub-folders to enrol")
    return enrolment


def probe_files(
    targets: list[str],
    extensions: list[str],
    empty: str = "name the audio files (or folders of them) to identify",
) -> list[Path]:
    """The files to identify (or enrol): those named, and the audio files inside the folders
    named; none is the error ``empty``."""
    files: list[Path] = []
    for target in map(Path, targets):
        if target.is_dir():
            files += audio_files(target, extensions)
        elif target.is_file():
            files.append(target)
        else:
            raise ConfigError(f"{target}: no such file or folder")
    if not files:
        raise ConfigError(empty)
    return files


def embed_one(model: Model, file: Path) -> Tensor:
    return model.embed([file])


def speaker_embeddings(name: str, files: list[Path], embed: Embed) -> Tensor:
    """(N,D) embeddings of a speaker's enrolment files with speech; a file without speech is left
    out with a warning, a speaker left with none is refused."""
    kept, refused = [], []
    for file in files:
        try:
            kept.append(embed(file)[0])
        except NoSpeechError as err:
            refused.append(f"{file.name}: {err.reason()}")
    if not kept:
        raise AudioError(
            f"speaker {name!r}: none of its {len(files)} enrolment files holds speech "
            f"({'; '.join(refused[:3])})"
        )
    if refused:
        log.warning("speaker %r enrolled without %s", name, "; ".join(refused))
    return torch.stack(kept)


def open_store(
    store: str,
    ckpt_path: str | None,
    threshold: str | float | None = "stored",
    gate: SpeechGate | None = None,
    max_seconds: float | None = None,
) -> tuple[Model, Speakers]:
    """A voiceprint store's model (the one it was made with; ``ckpt_path``: a copy of it
    elsewhere, refused unless its weights are the store's) and its speakers."""
    voiceprints = VoiceprintStore(store)
    prints = voiceprints.read()
    if not prints.names:
        raise ConfigError(f"store={store}: no speakers enrolled (all were removed)")
    path = ckpt_path if ckpt_path is not None else prints.meta["model"]
    model = load(path, threshold, gate, max_seconds)
    voiceprints.check_model(prints, weights_sha256(model.checkpoint["state_dict"]), str(path))
    return model, Speakers(list(prints.names), prints.models())
