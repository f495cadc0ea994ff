"""``speakerid-identify ckpt_path=... enrol_dir=DIR FILE_OR_DIR...``: who is speaking?

Each sub-folder of ``enrol_dir`` enrols one speaker (its name) with the mean of its files'
embeddings; every given file (or audio file inside a given folder) is labelled with the nearest
speaker, or ``unknown`` when the best cosine score is not above the threshold.
"""

import sys
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from speakerid.cli import quiet_environment, report_user_errors, tool_config
from speakerid.data.speech import speech_gate
from speakerid.errors import ConfigError
from speakerid.inference import embed_files, load_system, resolve_threshold
from speakerid.metrics.identification import UNKNOWN, centroids, reject_unknown
from speakerid.utils.io import atomic_open, writable_folder


def _audio_files(folder: Path, extensions: list[str]) -> list[Path]:
    suffixes = {f".{e.lower().lstrip('.')}" for e in extensions}
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def identify(argv: list[str]) -> list[tuple[str, str, float]]:
    """``(file, speaker or "unknown", best score)`` for each file named in ``argv``."""
    cfg, targets = tool_config("identify", argv)
    enrol_dir = Path(cfg.enrol_dir)
    if not enrol_dir.is_dir():
        raise ConfigError(f"{enrol_dir}: enrolment folder not found")
    speakers = sorted(p for p in enrol_dir.iterdir() if p.is_dir())
    enrol_files, enrol_labels = [], []
    for index, folder in enumerate(speakers):
        files = _audio_files(folder, list(cfg.extensions))
        if not files:
            raise ConfigError(f"{folder}: no audio files ({', '.join(cfg.extensions)}) to enrol")
        enrol_files += files
        enrol_labels += [index] * len(files)
    if not speakers:
        raise ConfigError(f"{enrol_dir}: no speaker sub-folders to enrol")
    files: list[Path] = []
    for target in map(Path, targets):
        if target.is_dir():
            files += _audio_files(target, list(cfg.extensions))
        elif target.is_file():
            files.append(target)
        else:
            raise ConfigError(f"{target}: no such file or folder")
    if not files:
        raise ConfigError("name the audio files (or folders of them) to identify")
    if cfg.output:  # before any work: a result that cannot be written is an error now
        writable_folder(Path(cfg.output).resolve().parent, "identification results")
    system, run_cfg, checkpoint = load_system(cfg.ckpt_path)
    threshold = resolve_threshold(cfg.threshold, checkpoint, cfg.ckpt_path)
    rate = run_cfg.data.sample_rate
    gate = speech_gate(cfg.speech_gate)
    models = centroids(
        embed_files(system, enrol_files, rate, gate=gate), torch.tensor(enrol_labels), len(speakers)
    )
    scores = embed_files(system, files, rate, gate=gate) @ models.T
    predictions, best = reject_unknown(scores, -float("inf") if threshold is None else threshold)
    results = [
        (str(f), "unknown" if p == UNKNOWN else speakers[p].name, float(s))
        for f, p, s in zip(files, predictions.tolist(), best.tolist(), strict=True)
    ]
    if cfg.output:
        with atomic_open(cfg.output) as out:
            out.write("file\tspeaker\tscore\n")
            out.writelines(f"{f}\t{s}\t{score:.6f}\n" for f, s, score in results)
    return results


def main() -> None:
    quiet_environment()
    torch.set_flush_denormal(True)
    results = report_user_errors(identify)(sys.argv[1:])
    table = Table(title="speakerid-identify")
    for column in ("file", "speaker", "score"):
        table.add_column(column, justify="right" if column == "score" else "left")
    for file, speaker, score in results:
        table.add_row(file, speaker, f"{score:.4f}")
    Console().print(table)


if __name__ == "__main__":
    main()
