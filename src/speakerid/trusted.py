"""Configs read from files run no code of the file's choosing.

A speakerid checkpoint rebuilds its model from the run config stored inside it, and Hydra's
``instantiate`` calls whatever ``_target_`` a config names: a crafted checkpoint naming
``shutil.copyfile`` or ``os.system`` would run it. So a config read from a file (a checkpoint, a
converted model) is instantiated only when every ``_target_`` in it is one that a YAML file of
``conf/`` names — the project's plug-ins and the few library classes its configs use (optimizers,
schedulers, SpeechBrain's augmentations, Lightning's callbacks). A prefix such as ``speakerid.``
is not enough: the package also holds functions that write files.

Interpolations (``${...}``) are refused too: stored configs are resolved when written, and a
resolver can act (``${sqlite_url:...}`` creates folders).
"""

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from speakerid.errors import ConfigError

TARGET = "_target_"


@functools.cache
def allowed_targets(config_dir: str | None = None) -> frozenset[str]:
    """Every ``_target_`` named by a YAML file of ``config_dir`` (default: the project's conf/)."""
    if config_dir is None:
        from speakerid.cli import CONFIG_PATH

        config_dir = CONFIG_PATH
    targets: set[str] = set()
    for path in sorted(Path(config_dir).rglob("*.yaml")):
        tree = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        targets.update(target for target, _ in _targets(tree))
    return frozenset(targets)


def _targets(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """``(target, dotted key)`` of every ``_target_`` in a plain config tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            if key == TARGET:
                yield str(value), where or "<root>"
            else:
                yield from _targets(value, here)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _targets(value, f"{where}[{index}]")


def _interpolation(node: Any, where: str = "") -> str | None:
    """The key of the first string holding an interpolation, or None."""
    if isinstance(node, str):
        return where if "${" in node else None
    if not isinstance(node, (dict, list)):
        return None
    for key, value in node.items() if isinstance(node, dict) else enumerate(node):
        found = _interpolation(value, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def check_trusted(config: dict, source: str | Path) -> dict:
    """Return ``config`` (a plain container read from ``source``) if it names only allowed
    ``_target_``s and holds no interpolation.

    Raises:
        ConfigError: naming the key and the target, before anything is instantiated.
    """
    allowed = allowed_targets()
    for target, where in _targets(config):
        if target not in allowed:
            raise ConfigError(
                f"{source}: refused: its config asks to run {target!r} (at {where}), which is not "
                "a speakerid plug-in or a class named in conf/; nothing was run"
            )
    key = _interpolation(config)
    if key is not None:
        raise ConfigError(
            f"{source}: refused: its config holds an interpolation at {key} (stored configs are "
            "resolved); nothing was run"
        )
    return config


# What a SpeechBrain speaker model's hyperparams.yaml may build (HyperPyYAML's !new:/!name:/
# !apply: tags call any Python object): the published speaker encoders' parts, nothing else.
SPEECHBRAIN_OBJECTS = frozenset(
    {
        "speechbrain.dataio.encoder.CategoricalEncoder",
        "speechbrain.lobes.features.Fbank",
        "speechbrain.lobes.features.MFCC",
        "speechbrain.lobes.models.ECAPA_TDNN.Classifier",
        "speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN",
        "speechbrain.lobes.models.ResNet.Classifier",
        "speechbrain.lobes.models.ResNet.ResNet",
        "speechbrain.lobes.models.Xvector.Classifier",
        "speechbrain.lobes.models.Xvector.Xvector",
        "speechbrain.processing.features.InputNormalization",
        "speechbrain.utils.parameter_transfer.Pretrainer",
        "torch.manual_seed",
        "torch.nn.ModuleDict",
    }
)
_HYPERPYYAML_TAG = re.compile(r"!(?:new|name|apply|module):\s*([\w.]+)|!!python/\S*")


def check_hyperpyyaml(path: Path) -> None:
    """Refuse a SpeechBrain ``hyperparams.yaml`` that would build anything but a speaker
    encoder's parts (:data:`SPEECHBRAIN_OBJECTS`), before SpeechBrain reads it.

    Raises:
        ConfigError: naming the file, the line and the object.
    """
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        code = line.split("#", 1)[0]
        for match in _HYPERPYYAML_TAG.finditer(code):
            target = match.group(1) or match.group(0)
            if target not in SPEECHBRAIN_OBJECTS:
                raise ConfigError(
                    f"{path}:{number}: refused: it asks to build {target!r}, which is not a part "
                    "of a SpeechBrain speaker encoder; nothing was run"
                )
