"""Any folder of recordings, one sub-folder per speaker: ``<root>/<speaker>/[...]/<file>``.

For evaluating a model on data of one's own (with a trial list written for it) rather than for
training: no metadata, no fixed depth, any format ``soundfile`` reads. The speaker is the first
folder under the root, the session the second when files are nested deeper (``-`` otherwise);
an utterance's id is its path under the root without the extension, which is how trial lists
name it (``spk1/take3.wav`` and ``spk1/take3.flac`` both resolve to ``spk1/take3``).

Symlinks are read only where they stay inside the root: one leading out of it (to ``/``, to
another disk) is never followed, and is counted in the validation report (``outside_root``).
A symlinked folder inside the root is not walked either: its files are found under their own
path, once.
"""

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from speakerid.data.corpora.base import AudioCorpus, Entry, stamp
from speakerid.data.validation import Validator
from speakerid.errors import ConfigError

log = logging.getLogger(__name__)
EXTENSIONS = ("wav", "flac", "ogg", "mp3")


class FolderCorpus(AudioCorpus):
    """Reader for ``<root>/<speaker>/**/<file>.{wav,flac,ogg,mp3}``.

    Args:
        root: the folder; each sub-folder is a speaker (files directly in the root are refused).
        cache_dir: manifest and validation report.
        extensions: the audio file endings read (case-insensitive); one string is one ending.
        **kwargs: the validation and filter settings of :class:`AudioCorpus`; ``conf/corpus/
            folder.yaml`` resamples other rates and downmixes stereo on the fly.
    """

    name = "folder"

    def __init__(
        self,
        root: str,
        cache_dir: str,
        extensions: str | Sequence[str] = EXTENSIONS,
        **kwargs,
    ) -> None:
        super().__init__(root, cache_dir, **kwargs)
        self.extensions = extension_list(extensions)

    def settings(self) -> dict:
        return {"extensions": list(self.extensions)}

    def contents(self) -> str:
        files, _ = walk_inside(self.root)
        return stamp(*(f for f in files if f.parent != self.root))  # speaker folders' files

    def describe(self) -> str:
        return f"no <speaker>/.../*.{{{','.join(self.extensions)}}} files"

    def entries(self, validator: Validator) -> list[Entry]:
        out, speakerless = [], 0
        files, outside = walk_inside(self.root)
        for link, target in outside:
            validator.problem(link, "outside_root", f"a symlink to {target}: not followed")
        for path in files:
            if path.suffix.lower().lstrip(".") not in self.extensions:
                continue
            rel = path.relative_to(self.root)
            if len(rel.parts) < 2:
                speakerless += 1
                continue
            session = rel.parts[1] if len(rel.parts) > 2 else "-"
            out.append(Entry(rel, rel.with_suffix("").as_posix(), rel.parts[0], session))
        if speakerless:
            log.warning(
                "%s: %d audio file(s) directly in the root left out: no speaker folder",
                self.root,
                speakerless,
            )
        return out


def extension_list(extensions: str | Sequence[str]) -> tuple[str, ...]:
    """File endings, lower case, without the dot; a single string is one ending
    (``extensions=wav`` on the command line), not its letters.

    Raises:
        ConfigError: no ending given.
    """
    endings = (extensions,) if isinstance(extensions, str) else tuple(extensions or ())
    endings = tuple(str(e).lower().lstrip(".") for e in endings)
    if not endings or not all(endings):
        raise ConfigError(f"extensions: file endings such as [wav, flac], got {extensions!r}")
    return endings


def walk_inside(root: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Every file below ``root`` (symlinks to files included, wherever the file is: a corpus
    made of links into a larger one is common, and a link to a file reads that one file), sorted,
    and the symlinked folders leading out of it (and broken links), with their targets: those are
    not followed. Real folders only are walked: a symlinked one inside the root holds nothing the
    walk does not reach by its own path, and one outside could be ``/``."""
    top = root.resolve()
    files, outside, folders = [], [], [root]
    while folders:
        with os.scandir(folders.pop()) as scan:
            entries = list(scan)
        for entry in entries:
            path = Path(entry.path)
            if entry.is_symlink():
                try:
                    target = path.resolve()
                except (OSError, RuntimeError):  # a loop of links
                    outside.append((path, os.readlink(path)))
                    continue
                if target.is_file():
                    files.append(path)
                elif not target.is_relative_to(top) or not target.exists():
                    outside.append((path, str(target)))
            elif entry.is_dir():
                folders.append(path)
            elif entry.is_file():
                files.append(path)
    return sorted(files), sorted(outside)
