"""Renaming another toolkit's state dict into one of our backbones': rules of (source pattern,
our name), every key accounted for, every shape checked, each mismatch named."""

import re
from collections.abc import Callable, Mapping, Sequence

from torch import Tensor, nn

from speakerid.errors import ConfigError

Rule = tuple[str, str]


def _named(keys: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown} (+{len(keys) - limit} more)" if len(keys) > limit else shown


class _Group(str):
    """A matched group; ``{0:-1}`` in a template writes a 1-based index (``block3``) 0-based
    (``blocks.2``)."""

    def __format__(self, spec: str) -> str:
        return str(int(self) - 1) if spec == "-1" else format(str(self), spec)


def rename_key(key: str, rules: Sequence[Rule]) -> str:
    """Our name of ``key`` by the first rule whose pattern matches it whole (its groups fill
    the template's ``{0}``, ``{1}``, ...); unchanged if none does.

    Example:
        >>> rename_key("block3.weight", [(r"block(\\d+)\\.(.+)", "blocks.{0:-1}.{1}")])
        'blocks.2.weight'
    """
    for pattern, template in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return template.format(*(_Group(g) for g in match.groups()))
    return key


def rename_state_dict(
    state: Mapping[str, Tensor],
    rename: Callable[[str], str],
    model: nn.Module,
    origin: str,
    drop: tuple[str, ...] = (),
) -> dict[str, Tensor]:
    """``state`` under ``model``'s names (``rename`` of each key), ready for
    ``model.load_state_dict`` (strict).

    Keys starting with a ``drop`` prefix (a training head) are left out; batch norms' missing
    ``num_batches_tracked`` counters are taken from ``model``.

    Raises:
        ConfigError: naming the source's keys that ``model`` has no place for, the keys
            ``model`` has that ``state`` lacks, and tensors whose shapes differ.
    """
    ours = {rename(key): key for key in state if not key.startswith(drop)}  # ours -> theirs
    target = model.state_dict()
    kind = type(model).__name__
    unexpected = [theirs for name, theirs in ours.items() if name not in target]
    missing = [k for k in target if k not in ours and not k.endswith("num_batches_tracked")]
    if unexpected or missing:
        parts = [f"unexpected keys {_named(unexpected)}" if unexpected else ""]
        parts += [f"missing keys (our names) {_named(missing)}" if missing else ""]
        raise ConfigError(f"{origin}: does not fit {kind}: " + "; ".join(p for p in parts if p))
    converted = {k: state[ours[k]] if k in ours else target[k] for k in target}
    wrong = [
        f"{ours[k]} {tuple(v.shape)} vs {tuple(target[k].shape)}"
        for k, v in converted.items()
        if v.shape != target[k].shape
    ]
    if wrong:
        raise ConfigError(f"{origin}: shapes differ from this {kind}'s: {_named(wrong)}")
    return converted
