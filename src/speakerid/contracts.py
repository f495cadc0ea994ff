"""The typed contracts every plug-in honours, so any loss head works with any backbone or enhancer.

Each config group's plug-ins satisfy one Protocol here (``GROUP_CONTRACTS`` maps the group to
it; a test instantiates every YAML of every group and checks it). Optional abilities — a head
with a classifier, a margin, per-speaker targets or its own optimizer; a corpus of several
members — are small Protocols of their own, checked with ``isinstance`` where they are used.
A plug-in author implements the methods listed here, nothing discovered by grepping.

Shapes: B batch, S samples, T frames, F features, D embedding size, C classes.
"""

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

from torch import Tensor, nn

if TYPE_CHECKING:
    from speakerid.data.manifest import Manifest
    from speakerid.data.validation import ValidationReport

# Labels a loss head receives: (B,) speaker classes, or (B,K) whose columns are these.
SPEAKER, SESSION, OTHER = 0, 1, 2


def label_column(labels: Tensor, column: int = SPEAKER) -> Tensor:
    """One column of (B,K) labels; (B,) labels are the speaker column itself."""
    if labels.ndim == 1:
        if column != SPEAKER:
            raise ValueError("this head needs (B,3) labels (speaker, session, other), got (B,)")
        return labels
    return labels[:, column]


class HeadOutput(NamedTuple):
    """What a loss head returns: the loss, and class logits when the head has a classifier."""

    loss: Tensor
    logits: Tensor | None = None


@runtime_checkable
class FrontEnd(Protocol):
    """Waveforms to features: ``(B,S), (B,) samples -> (B,T,F), (B,) frames``."""

    num_mels: int

    def __call__(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]: ...


@runtime_checkable
class Backbone(Protocol):
    """Features to embeddings: ``(B,T,F), (B,) frames -> (B,D)``, with ``D = embed_dim``."""

    embed_dim: int

    def __call__(self, features: Tensor, lengths: Tensor | None = None) -> Tensor: ...


@runtime_checkable
class Enhancer(Protocol):
    """Embeddings to enhanced embeddings: ``(B,D) -> (B,D')``, with ``D' = embed_dim``."""

    embed_dim: int

    def __call__(self, embeddings: Tensor) -> Tensor: ...


@runtime_checkable
class LossHead(Protocol):
    """``(embeddings (B,D), labels) -> HeadOutput``. A head owns its parameters.

    ``labels`` is (B,) speaker classes, or (B,K) with the speaker in column :data:`SPEAKER`
    (the embedding data module adds :data:`SESSION` and :data:`OTHER`); every head reads the
    columns it needs through :func:`label_column`.
    """

    def __call__(self, embeddings: Tensor, labels: Tensor) -> HeadOutput: ...


# -- optional abilities of a loss head -----------------------------------------------------------


@runtime_checkable
class Classifier(Protocol):
    """A head with a speaker classifier: ``(B,D) -> (B,C)`` logits (closed-set identification)."""

    def classify(self, embeddings: Tensor) -> Tensor: ...


@runtime_checkable
class MarginHead(Protocol):
    """A head whose margin can change during training (the margin schedule sets it each step)."""

    margin: float

    def set_margin(self, margin: float) -> None: ...


@runtime_checkable
class NeedsTargets(Protocol):
    """A head that compares embeddings with per-speaker targets, handed over before training:
    ``(S,D)``, one row per speaker class (embedding enhancement)."""

    def set_targets(self, targets: Tensor) -> None: ...


@runtime_checkable
class OwnOptimizer(Protocol):
    """A head that optimizes some of its parameters itself (the contrastive-center loss's
    centers): the system's optimizer leaves ``own_parameters()`` alone and calls ``step_own()``
    after each of its own steps."""

    def own_parameters(self) -> list[nn.Parameter]: ...

    def step_own(self) -> None: ...


# -- corpora ------------------------------------------------------------------------------------


@runtime_checkable
class Corpus(Protocol):
    """A corpus reader: utterance rows of a folder, and where its lists are.

    ``prepare()`` builds or checks the folder (raising a one-line error when it is unusable);
    ``manifest()`` returns the rows (cached; ``validate=True`` re-reads every file);
    ``trial_path(name)`` is the path of a trial or split list; ``validation_reports()`` the
    reports of validation passes this reader ran in this process (folder -> report).
    """

    root: Path

    def prepare(self) -> None: ...

    def manifest(self, validate: bool = False) -> "Manifest": ...

    def trial_path(self, name: str) -> Path: ...

    def validation_reports(self) -> "Mapping[Path, ValidationReport]": ...


@runtime_checkable
class CompositeCorpus(Protocol):
    """A corpus made of member corpora: its lists' paths need the member's prefix, and members
    kept for evaluation give speakers that must never train."""

    def list_prefix(self, name: str) -> str: ...

    def reserved_speakers(self, manifest: "Manifest") -> set[str]: ...


def list_prefix(corpus: Corpus, name: str) -> str:
    """What list ``name``'s paths need in front to name the corpus's utterance ids."""
    return corpus.list_prefix(name) if isinstance(corpus, CompositeCorpus) else ""


def reserved_speakers(corpus: Corpus, manifest: "Manifest") -> set[str]:
    """Speakers of ``manifest`` that only evaluate (never train)."""
    return corpus.reserved_speakers(manifest) if isinstance(corpus, CompositeCorpus) else set()


# -- checking a plug-in -------------------------------------------------------------------------

# The contract each config group's plug-ins honour (folder under conf/ -> Protocol).
GROUP_CONTRACTS: dict[str, type] = {
    "features": FrontEnd,
    "model/backbone": Backbone,
    "model/enhancer": Enhancer,
    "loss": LossHead,
    "enhance_loss": LossHead,
    "corpus": Corpus,
}


def missing_members(plugin: object, contract: type) -> list[str]:
    """The attributes and methods of ``contract`` that ``plugin`` lacks (empty: it honours it)."""
    members = _protocol_members(contract)
    return sorted(m for m in members if not hasattr(plugin, m))


def _protocol_members(contract: type) -> Iterable[str]:
    names = getattr(contract, "__protocol_attrs__", None)  # Python >= 3.12
    if names is None:  # earlier: what typing itself uses
        from typing import _get_protocol_attrs  # type: ignore[attr-defined]

        names = _get_protocol_attrs(contract)
    return names
