"""Where a command may write: nothing a user had before a command is deleted, overwritten or mixed.

Every entry point that writes checks its output paths before any work, and refuses with one line
(exit 2) a path that is one of its inputs, that holds or lies inside the corpus it reads, or that
already holds something speakerid did not make. Folders speakerid makes for its own work in
progress (``<x>.partial``, ``<x>.old``) carry a marker file, and only folders with the marker are
ever removed.
"""

import os
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from speakerid.errors import ConfigError

MARKER = ".speakerid"  # in every folder speakerid may later remove or reuse
RESUMABLE = ("train", "enhance")  # tasks that continue a run in its own folder (ckpt_path=)


def mark(folder: Path, what: str) -> None:
    """Claim ``folder`` (made by this command) with the marker file."""
    (folder / MARKER).write_text(f"{what}\n")


def remove_ours(folder: Path) -> None:
    """Remove ``folder`` if it is missing or marked as speakerid's; otherwise refuse."""
    if not folder.exists():
        return
    if not (folder / MARKER).is_file():
        raise ConfigError(
            f"{folder}: exists and was not made by speakerid, which would have to remove it: "
            "move it away or choose another output"
        )
    shutil.rmtree(folder)


def overlap(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether one of the two paths is the other or lies inside it (symlinks resolved)."""
    a, b = Path(a).resolve(), Path(b).resolve()
    return a == b or a in b.parents or b in a.parents


def refuse_overlap(
    output: str | os.PathLike, inputs: Iterable[str | os.PathLike], what: str
) -> None:
    """Refuse an output path that is, holds or lies inside one of ``inputs``.

    Raises:
        ConfigError: naming both paths.
    """
    for source in inputs:
        if overlap(output, source):
            raise ConfigError(
                f"{what}={output}: overlaps an input of this command ({source}); nothing is "
                "written into, over or around what a command reads: choose another"
            )


def claim_folder(folder: str | os.PathLike, what: str, ours: Callable[[Path], bool]) -> Path:
    """``folder`` if it is missing, empty, or ``ours`` (an earlier output of the same kind).

    Raises:
        ConfigError: it exists and holds something else (the user's files) or is a file.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{what}={folder}: is a file, not a folder: choose another")
    if folder.is_dir() and any(folder.iterdir()) and not ours(folder):
        raise ConfigError(
            f"{what}={folder}: already holds files that are not a speakerid {what.split('.')[-1]} "
            "(nothing there is overwritten): choose another folder, or an empty one"
        )
    return folder


def is_run_folder(folder: Path) -> bool:
    """A folder one of speakerid's commands ran in (Hydra's record of the run is in it)."""
    return (folder / ".hydra" / "config.yaml").is_file() or (folder / MARKER).is_file()


class FreshRunFolder(Callback):
    """Hydra callback: a run (or sweep) starts only in a folder that is new or empty, before Hydra
    writes its record there — except a training that resumes its own run folder
    (``ckpt_path=...`` given, and the folder is a speakerid run folder)."""

    def on_run_start(self, config: DictConfig, **kwargs: object) -> None:
        resuming = config.get("task_name") in RESUMABLE and config.get("ckpt_path") is not None
        self._check(config, "hydra.run.dir", resuming)

    def on_multirun_start(self, config: DictConfig, **kwargs: object) -> None:
        self._check(config, "hydra.sweep.dir", resuming=False)

    @staticmethod
    def _check(config: DictConfig, key: str, resuming: bool) -> None:
        """Exit with one line (status 2) if the folder is not fresh: Hydra turns an exception
        raised by a callback into a warning and runs on, so this one exits itself."""
        try:
            _fresh(config, key, resuming)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)


def _fresh(config: DictConfig, key: str, resuming: bool) -> None:
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(config)  # ${hydra:...} in the folder's interpolation
    folder = Path(str(OmegaConf.select(config, key)))
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    if resuming and is_run_folder(folder):
        return
    if is_run_folder(folder):
        hint = " (continue that training with ckpt_path=last)" if key == "hydra.run.dir" else ""
        raise ConfigError(
            f"{key}={folder}: holds another run; a run starts in a new or empty folder{hint}"
        )
    first = sorted(p.name for p in folder.iterdir())[0]
    raise ConfigError(
        f"{key}={folder}: already holds files of its own (e.g. {first}); a run starts in a new "
        "or empty folder, and nothing there is overwritten"
    )


def result_file(
    output: str | None,
    inputs: list[Path],
    tool: str,
    what: str,
    earlier_result: Callable[[Path], bool],
) -> Path | None:
    """A tool's result file ``output=`` (None: none asked for), checked before any work: not one
    of the ``inputs``, not a folder, not a file of the user's (only a file ``earlier_result``
    recognizes as this tool's is replaced), in a writable folder."""
    from speakerid.utils.io import writable_folder

    if not output:
        return None
    path = Path(output)
    refuse_overlap(path, inputs, "output")
    if path.is_dir():
        raise ConfigError(f"output={path}: is a folder; name the file to write")
    if path.exists() and not earlier_result(path):
        raise ConfigError(
            f"output={path}: exists and is not an earlier {tool} result (nothing there is "
            "overwritten): choose another path, or move the file away"
        )
    writable_folder(path.resolve().parent, what)
    return path
