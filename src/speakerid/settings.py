"""Types and ranges of the settings a run reads, checked before anything is built.

Hydra passes a mistyped override through as a string (``trainer.max_epochs=abc``) and OmegaConf
keeps a negative learning rate; both would fail minutes later, deep in Lightning or PyTorch, after
the corpus was built. :func:`check_settings` names the key instead, in one line.
"""

from collections.abc import Callable, Mapping, Sequence
from numbers import Real

from omegaconf import DictConfig, OmegaConf

from speakerid.errors import ConfigError

Rule = tuple[type | tuple[type, ...], Callable[[float], bool] | None, str]


def _integer(low: int, what: str) -> Rule:
    return (int, lambda v: v >= low, what)


def _positive(what: str = "> 0") -> Rule:
    return (Real, lambda v: v > 0, what)


TRAIN: Mapping[str, Rule] = {
    "seed": (int, None, "an integer"),
    "trainer.max_epochs": _integer(-1, "an integer >= -1 (-1: no limit)"),
    "trainer.max_steps": _integer(-1, "an integer >= -1 (-1: no limit)"),
    "trainer.accumulate_grad_batches": _integer(1, "an integer >= 1"),
    "data.batch_size": _integer(1, "an integer >= 1"),
    "data.num_workers": _integer(0, "an integer >= 0"),
    # one class teaches a classifier head nothing (its loss is 0 from the first step)
    "data.num_speakers": _integer(2, "at least 2 training classes (null: counted)"),
    "data.crop_seconds": _positive("a number of seconds > 0"),
    "data.val_speakers": (
        (Real, Sequence),
        lambda v: (
            not isinstance(v, str) and len(v) >= 2
            if isinstance(v, Sequence)
            else 0 < v < 1 or v >= 2
        ),
        "a count >= 2, a fraction below 1, or a list of 2 or more speakers",
    ),
    "optimizer.lr": _positive("a learning rate > 0"),
    "optimizer.weight_decay": (Real, lambda v: v >= 0, "a number >= 0"),
    "loss.scale": _positive("a logit scale > 0"),
    # an angle in radians (AAM) or a cosine offset (AM, triplet): recipes use 0.1-0.5, and a
    # margin of 1 or more (57 degrees, half the cosine range) is a slip, not a setting
    "loss.margin": (Real, lambda v: 0 <= v < 1, "a margin in [0, 1)"),
}


EMBEDDING: Mapping[str, Rule] = {  # speakerid-eval and speakerid-embed
    "seed": (int, None, "an integer"),
    "crops": _integer(0, "an integer >= 0 (0: whole utterances)"),
    "crop_seconds": _positive("a number of seconds > 0"),
    "batch_size": _integer(1, "an integer >= 1"),
    "num_workers": _integer(0, "an integer >= 0"),
    "shard_size": _integer(1, "an integer >= 1"),
}

ENHANCE: Mapping[str, Rule] = {
    "seed": (int, None, "an integer"),
    "trainer.max_epochs": TRAIN["trainer.max_epochs"],
    "trainer.max_steps": TRAIN["trainer.max_steps"],
    "data.batch_size": TRAIN["data.batch_size"],
    "data.num_workers": TRAIN["data.num_workers"],
    "optimizer.lr": TRAIN["optimizer.lr"],
    "optimizer.weight_decay": TRAIN["optimizer.weight_decay"],
}


def check_settings(cfg: DictConfig, rules: Mapping[str, Rule] = TRAIN) -> None:
    """Raise :class:`ConfigError` naming the first key of ``rules`` whose value (when set) has
    the wrong type or is out of range."""
    for key, (kind, in_range, what) in rules.items():
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if value is None:
            continue
        wrong_type = isinstance(value, bool) or not isinstance(value, kind)
        if wrong_type or (in_range is not None and not in_range(value)):
            raise ConfigError(f"{key}={value!r}: expected {what}")
