"""``speakerid-identify ckpt_path=... enrol_dir=DIR|store=DIR FILE_OR_DIR...``: who is speaking?

Each sub-folder of ``enrol_dir`` enrols one speaker (its name) with the mean of its files'
embeddings (or ``store=`` names a voiceprint store of ``speakerid-enroll``, whose model is used:
:mod:`speakerid.voiceprints`); every given file (or audio file inside a given folder) is
labelled with the nearest speaker, or ``unknown`` when the best cosine score is not above the
threshold. A file without speech (the speech gate) is labelled ``no speech`` on its row, with the
reason, and the others are identified all the same; only when no file holds speech is the run an
error. ``output=`` also writes the rows as TSV (or JSON for ``*.json``), quoted by the csv module:
a file name with a tab or a newline stays one field of one row.
"""

import csv
import functools
import json
import logging
import sys
from pathlib import Path
from typing import NamedTuple

import torch
from rich.console import Console
from rich.table import Table
from torch import Tensor

from speakerid.api import Model, Speakers, load
from speakerid.cli import quiet_environment, report_user_errors, tool_config
from speakerid.data.corpora.folder import extension_list
from speakerid.data.speech import NoSpeechError, speech_gate
from speakerid.enrolment import (
    Embed,
    embed_one,
    enrolment_folders,
    open_store,
    probe_files,
    speaker_embeddings,
)
from speakerid.errors import AudioError, ConfigError
from speakerid.outputs import result_file
from speakerid.utils.io import atomic_open, file_sha256

log = logging.getLogger(__name__)
COLUMNS = ("file", "speaker", "score", "note", "candidates")
NO_SPEECH = "no speech"


class Row(NamedTuple):
    """One identified file: the speaker, ``unknown`` or ``no speech``; the best score (None
    without speech); a note (why there is no speech); the ``top_k`` nearest speakers, as
    ``name:score`` separated by spaces."""

    file: str
    speaker: str
    score: float | None
    note: str = ""
    candidates: str = ""


def identify(argv: list[str]) -> list[Row]:
    """A :class:`Row` for each file named in ``argv`` (or inside a folder named there)."""
    cfg, targets = tool_config("identify", argv)
    gate = speech_gate(cfg.speech_gate)
    alike = cfg.identical_above
    if isinstance(alike, bool) or not isinstance(alike, (int, float)) or not -1 <= alike <= 1:
        raise ConfigError(f"identical_above={alike!r}: must be a cosine, in [-1, 1]")
    top_k = cfg.top_k
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k={top_k!r}: a whole number of candidates, 1 or more")
    if (cfg.enrol_dir is None) == (cfg.store is None):
        raise ConfigError("give exactly one of enrol_dir=DIR (folders of files) or store=DIR")
    if cfg.store is None and cfg.ckpt_path is None:
        raise ConfigError("missing required setting(s): ckpt_path=...")
    extensions = list(extension_list(cfg.extensions))  # extensions=wav: one ending, not w, a, v
    enrolment = {} if cfg.enrol_dir is None else enrolment_folders(Path(cfg.enrol_dir), extensions)
    files = probe_files(targets, extensions)
    enrolled = [f for fs in enrolment.values() for f in fs]
    model_inputs = [Path(cfg.store)] if cfg.store else [Path(cfg.ckpt_path)]
    output = result_file(
        cfg.output,
        [*files, *enrolled, *model_inputs],
        "speakerid-identify",
        "identification results",
        _earlier_result,
    )
    if cfg.store is not None:
        model, speakers = open_store(cfg.store, cfg.ckpt_path, cfg.threshold, gate, cfg.max_seconds)
    else:
        model = load(cfg.ckpt_path, cfg.threshold, gate, cfg.max_seconds)
    if cfg.threshold is not None:
        model.threshold  # noqa: B018 (a missing stored threshold is refused before any work)
    embed = functools.partial(embed_one, model)  # one file at a time: memory bounded
    if enrolment:
        speakers = _speaker_models(enrolment, embed)
    _warn_alike(speakers.models, speakers.names, alike)
    _warn_enrolled_probes(files, enrolled)
    rows = _label(files, speakers, embed, model, top_k)
    silent = [row for row in rows if row.speaker == NO_SPEECH]
    if len(silent) == len(rows):
        examples = "; ".join(f"{row.file}: {row.note}" for row in silent[:3])
        raise AudioError(f"none of the {len(rows)} files holds speech ({examples})")
    if output is not None:
        _write(output, rows)
    print(model.operating_point.describe(), file=sys.stderr)  # after any error: one line each
    return rows


def _earlier_result(path: Path) -> bool:
    """Whether ``path`` holds rows this tool wrote (its TSV header, or its JSON rows)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            if path.suffix.lower() != ".json":
                return next(csv.reader(f, delimiter="\t"), None) == list(COLUMNS)
            rows = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError, csv.Error):
        return False
    return isinstance(rows, list) and all(
        isinstance(r, dict) and set(r) == set(COLUMNS) for r in rows
    )


def _speaker_models(enrolment: dict[str, list[Path]], embed: Embed) -> Speakers:
    """The speaker models from the enrolment files with speech."""
    return Model.speakers(
        {name: speaker_embeddings(name, files, embed) for name, files in enrolment.items()}
    )


def _warn_alike(models: Tensor, names: list[str], above: float) -> None:
    """Warn about enrolled speakers whose models are (near-)identical: no file can tell them
    apart (the same recordings enrolled twice, or one voice under two names)."""
    similarity = torch.triu(models @ models.T, diagonal=1)
    pairs = (similarity > above).nonzero().tolist()
    if pairs:
        log.warning(
            "%d pair(s) of enrolled speakers are (near-)identical (cosine above %s): %s; "
            "files of either are labelled with one of them at random",
            len(pairs),
            above,
            "; ".join(
                f"{names[i]} = {names[j]} ({float(similarity[i, j]):.4f})" for i, j in pairs[:3]
            ),
        )


def _warn_enrolled_probes(files: list[Path], enrolled: list[Path]) -> None:
    """Warn about files to identify that are enrolment files (the same path, or the same bytes):
    their scores are an utterance against itself, not evidence."""
    paths = {p.resolve(): p for p in enrolled}
    sizes = {p.stat().st_size for p in enrolled}
    hashes: dict[str, Path] | None = None
    same = []
    for file in files:
        match = paths.get(file.resolve())
        if match is None and file.stat().st_size in sizes:  # only then is hashing worth it
            hashes = hashes or {file_sha256(p): p for p in enrolled}
            match = hashes.get(file_sha256(file))
        if match is not None:
            same.append(f"{file} = {match}")
    if same:
        log.warning(
            "%d file(s) to identify are enrolment files (same path or same bytes), so they "
            "match their speaker trivially: %s",
            len(same),
            "; ".join(same[:3]),
        )


def _label(
    files: list[Path], speakers: Speakers, embed: Embed, model: Model, top_k: int = 1
) -> list[Row]:
    """A row per file: the nearest speaker model (``unknown`` when its score is not above
    the model's threshold) and the ``top_k`` nearest with their scores, or ``no speech``."""
    rows = []
    for file in files:  # one at a time: memory bounded whatever the number of files
        try:
            embedding = embed(file)
        except NoSpeechError as err:
            rows.append(Row(str(file), NO_SPEECH, None, err.reason()))
            continue
        (match,) = model.match(embedding, speakers)
        top = (embedding[0].float() @ speakers.models.T).topk(min(top_k, len(speakers.names)))
        candidates = " ".join(
            f"{speakers.names[i]}:{s:.4f}"
            for s, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
        )
        rows.append(Row(str(file), match.speaker, match.score, "", candidates))
    return rows


def _write(output: Path, rows: list[Row]) -> None:
    """The rows as JSON (``*.json``) or TSV, written atomically; the csv module quotes a field
    holding a tab, a newline or a quote, so no file name can forge a row."""
    with atomic_open(output) as out:
        if output.suffix.lower() == ".json":
            json.dump([row._asdict() for row in rows], out, indent=1, ensure_ascii=False)
            out.write("\n")
            return
        writer = csv.writer(out, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(
            (
                row.file,
                row.speaker,
                "" if row.score is None else f"{row.score:.6f}",
                row.note,
                row.candidates,
            )
            for row in rows
        )


def _shown(text: str) -> str:
    """``text`` with control characters escaped, for the terminal table."""
    return text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text


def main() -> None:
    quiet_environment()
    torch.set_flush_denormal(True)
    rows = report_user_errors(identify)(sys.argv[1:])
    table = Table(title="speakerid-identify")
    for column in COLUMNS:
        table.add_column(column, justify="right" if column == "score" else "left")
    for row in rows:
        score = "" if row.score is None else f"{row.score:.4f}"
        table.add_row(_shown(row.file), row.speaker, score, row.note, row.candidates)
    Console().print(table)
    silent = sum(row.speaker == NO_SPEECH for row in rows)
    if silent:
        print(
            f"warning: {silent} of {len(rows)} files hold no speech (their rows say why)",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
