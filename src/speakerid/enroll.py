"""``speakerid-enroll store=DIR ...``: keep enrolled speakers' voiceprints once, for
``speakerid-identify store=DIR`` and ``speakerid-search``.

- ``ckpt_path=M store=DIR enrol_dir=E``: enrol one speaker per sub-folder of ``E`` (as
  ``speakerid-identify enrol_dir=`` reads them);
- ``store=DIR speaker=NAME FILE...``: enrol the files given as one speaker;
- ``store=DIR action=list``: the enrolled speakers, with how many files each voiceprint holds;
- ``store=DIR action=remove speaker=NAME`` (or ``speaker=[A,B]``): forget speakers.

Enrolling a speaker the store already holds adds the files to its voiceprint. The store keeps
the model it was made with (its path and the sha256 of its weights): later commands use that
model, and refuse another (see :mod:`speakerid.voiceprints`).
"""

import functools
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig, ListConfig
from rich.console import Console
from rich.table import Table

from speakerid.api import load
from speakerid.cli import quiet_environment, report_user_errors, tool_config
from speakerid.data.corpora.folder import extension_list
from speakerid.data.speech import speech_gate
from speakerid.enrolment import embed_one, enrolment_folders, probe_files, speaker_embeddings
from speakerid.errors import ConfigError
from speakerid.outputs import refuse_overlap
from speakerid.voiceprints import Voiceprints, VoiceprintStore, check_name, weights_sha256

ACTIONS = ("add", "list", "remove")


def enroll(argv: list[str]) -> Voiceprints:
    """Carry out the command in ``argv``; the store's speakers afterwards."""
    cfg, targets = tool_config("enroll", argv)
    if cfg.action not in ACTIONS:
        raise ConfigError(f"action={cfg.action!r}: one of {', '.join(ACTIONS)}")
    store = VoiceprintStore(cfg.store)
    if cfg.action == "list":
        if targets:
            raise ConfigError(f"action=list takes no files ({targets[0]})")
        return store.read()
    if cfg.action == "remove":
        if targets or cfg.speaker is None:
            raise ConfigError("action=remove takes speaker=NAME (or speaker=[A,B]) and no files")
        names = cfg.speaker if isinstance(cfg.speaker, ListConfig) else [cfg.speaker]
        return store.remove([str(n) for n in names])
    return _add(cfg, store, targets)


def _add(cfg: DictConfig, store: VoiceprintStore, targets: list[str]) -> Voiceprints:
    """Embed the enrolment files and add them to the store."""
    extensions = list(extension_list(cfg.extensions))
    enrolment = _what_to_enrol(cfg, targets, extensions)
    model = _model_path(cfg, store)
    folders = [Path(cfg.enrol_dir)] if cfg.enrol_dir is not None else []
    inputs = [*(f for fs in enrolment.values() for f in fs), *folders, model]
    refuse_overlap(store.root, inputs, "store")
    encoder = load(model, None, speech_gate(cfg.speech_gate), cfg.max_seconds)
    sha = weights_sha256(encoder.checkpoint["state_dict"])
    if store.exists():  # before any embedding: a foreign model is refused at once
        store.check_model(store.read(), sha, str(model))
    embed = functools.partial(embed_one, encoder)
    with torch.inference_mode():
        embeddings = {
            name: speaker_embeddings(name, files, embed) for name, files in enrolment.items()
        }
    meta = {
        "model": str(model.resolve()),
        "model_sha256": sha,
        "dim": int(next(iter(embeddings.values())).shape[1]),
        "sample_rate": encoder.sample_rate,
    }
    return store.add(embeddings, meta)


def _what_to_enrol(
    cfg: DictConfig, targets: list[str], extensions: list[str]
) -> dict[str, list[Path]]:
    """Speaker -> enrolment files, from ``enrol_dir`` or from ``speaker`` and the files given."""
    if (cfg.enrol_dir is None) == (cfg.speaker is None):
        raise ConfigError(
            "to enrol, give enrol_dir=DIR (one sub-folder per speaker) or speaker=NAME FILE..."
        )
    if cfg.enrol_dir is not None:
        if targets:
            raise ConfigError(f"enrol_dir= takes no files on the command line ({targets[0]})")
        enrolment = enrolment_folders(Path(cfg.enrol_dir), extensions)
        for name in enrolment:
            check_name(name)
        return enrolment
    if not isinstance(cfg.speaker, str):
        raise ConfigError(f"speaker={cfg.speaker!r}: one name when adding files")
    empty = f"speaker={cfg.speaker}: name the audio files to enrol"
    files = probe_files(targets, extensions, empty)
    return {check_name(cfg.speaker): files}


def _model_path(cfg: DictConfig, store: VoiceprintStore) -> Path:
    """The model to embed with: ``ckpt_path``, or the store's own."""
    if cfg.ckpt_path is not None:
        return Path(cfg.ckpt_path)
    if not store.exists():
        raise ConfigError(f"store={store.root} is new: give the model, ckpt_path=...")
    return Path(store.read().meta["model"])


def main() -> None:
    quiet_environment()
    torch.set_flush_denormal(True)
    prints = report_user_errors(enroll)(sys.argv[1:])
    table = Table(title=f"speakerid-enroll: {len(prints.names)} speakers")
    table.add_column("speaker")
    table.add_column("files", justify="right")
    for name, count in zip(prints.names, prints.counts.tolist(), strict=True):
        table.add_row(name, str(count))
    Console().print(table)
    print(f"model: {prints.meta.get('model')} (weights sha256 {prints.meta.get('model_sha256')})")


if __name__ == "__main__":
    main()
