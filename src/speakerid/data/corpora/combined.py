"""Several corpora as one: speaker, session and utterance ids prefixed with the member's name, so
that ``id10001`` of two corpora are two speakers; paths are absolute (the manifest root is ``/``).

Trial lists and identification splits are looked up in the members' roots; the member that holds
one gives its paths their prefix (:meth:`CombinedCorpus.list_prefix`).
"""

from collections.abc import Mapping, Sequence
from pathlib import Path

from speakerid.data.manifest import Manifest
from speakerid.errors import ConfigError, ListFileError


class CombinedCorpus:
    """Members trained on together (e.g. CommonVoice + VoxForge for GE2E).

    Args:
        corpora: name -> corpus reader; the name prefixes every id of that member.
        eval_only: members whose speakers never train (e.g. VoxCeleb1 beside VoxCeleb2 for its
            trial lists); their utterances serve trial lists and identification only.

    Example:
        >>> corpus = CombinedCorpus({"cv": commonvoice, "vf": voxforge})  # doctest: +SKIP
        >>> corpus.manifest().speakers[:2]  # doctest: +SKIP
        ['cv/0a1b...', 'vf/ralfherzog']
    """

    def __init__(self, corpora: Mapping[str, object], eval_only: Sequence[str] = ()) -> None:
        if not corpora:
            raise ConfigError("corpora: name at least one corpus to combine")
        bad = [n for n in corpora if not n or "/" in n]
        if bad:
            raise ConfigError(f"corpora: names must be non-empty and without '/': {bad}")
        unknown = [n for n in eval_only if n not in corpora]
        if unknown:
            raise ConfigError(
                f"eval_only names no combined corpus: {unknown} (have {list(corpora)})"
            )
        self.corpora = dict(corpora)
        self.eval_only = list(eval_only)
        self.root = Path("/")

    def prepare(self) -> None:
        for corpus in self.corpora.values():
            corpus.prepare()

    def manifest(self, validate: bool = False) -> Manifest:
        rows = []
        for name, corpus in self.corpora.items():
            member = corpus.manifest(validate)
            rows += [
                row._replace(
                    utt_id=f"{name}/{row.utt_id}",
                    path=str(member.audio_path(row).resolve()),
                    speaker=f"{name}/{row.speaker}",
                    session=f"{name}/{row.session}",
                )
                for row in member
            ]
        return Manifest(self.root, rows)

    def validation_reports(self) -> dict:
        return {p: r for c in self.corpora.values() for p, r in c.validation_reports().items()}

    def reserved_speakers(self, manifest: Manifest) -> set[str]:
        """Speakers that must not train: those of the ``eval_only`` members."""
        prefixes = tuple(f"{name}/" for name in self.eval_only)
        return {s for s in manifest.speakers if prefixes and s.startswith(prefixes)}

    def _holder(self, list_name: str) -> tuple[str, Path]:
        for name, corpus in self.corpora.items():
            path = corpus.trial_path(list_name)
            if path.is_file():
                return name, path
        roots = ", ".join(str(c.root) for c in self.corpora.values())
        raise ListFileError(f"{list_name}: in none of the combined corpora ({roots})")

    def trial_path(self, list_name: str) -> Path:
        return self._holder(list_name)[1]

    def list_prefix(self, list_name: str) -> str:
        """What the paths of list ``list_name`` need in front to name combined utterances."""
        return self._holder(list_name)[0] + "/"
