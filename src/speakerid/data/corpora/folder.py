"""Any folder of recordings, one sub-folder per speaker: ``<root>/<speaker>/[...]/<file>``.

For evaluating a model on data of one's own (with a trial list written for it) rather than for
training: no metadata, no fixed depth, any format ``soundfile`` reads. The speaker is the first
folder under the root, the session the second when files are nested deeper (``-`` otherwise);
an utterance's id is its path under the root without the extension, which is how trial lists
name it (``spk1/take3.wav`` and ``spk1/take3.flac`` both resolve to ``spk1/take3``).
"""

import logging

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
        extensions: the audio file endings read (case-insensitive).
        **kwargs: the validation and filter settings of :class:`AudioCorpus`; ``conf/corpus/
            folder.yaml`` resamples other rates and downmixes stereo on the fly.
    """

    name = "folder"

    def __init__(
        self,
        root: str,
        cache_dir: str,
        extensions: tuple[str, ...] | list[str] = EXTENSIONS,
        **kwargs,
    ) -> None:
        super().__init__(root, cache_dir, **kwargs)
        if isinstance(extensions, str) or not extensions:
            raise ConfigError(f"extensions must be a list of file endings, got {extensions!r}")
        self.extensions = tuple(e.lower().lstrip(".") for e in extensions)

    def settings(self) -> dict:
        return {"extensions": list(self.extensions)}

    def contents(self) -> str:
        return stamp(*sorted(p for p in self.root.iterdir() if p.is_dir()))

    def describe(self) -> str:
        return f"no <speaker>/.../*.{{{','.join(self.extensions)}}} files"

    def entries(self, validator: Validator) -> list[Entry]:
        out, speakerless = [], 0
        for path in sorted(self.root.rglob("*")):
            if not path.is_file() or path.suffix.lower().lstrip(".") not in self.extensions:
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
