"""The reference implementations of the parity tests, imported without their toolkits' baggage.

``wespeaker-unofficial`` ships WeSpeaker's model code (byte-identical to its repository at commit
dfa7419), but ``import wespeaker`` runs its command-line module, and ``wespeaker.frontend`` imports
s3prl and whisper: so the packages are put in ``sys.modules`` as bare namespaces over their
folders, and only the modules asked for (which import torch, numpy and scipy) are executed.
``speakerlab`` (3D-Speaker's models) is loaded the same way. The runtime never imports either.

Example:
    >>> resnet = wespeaker("models.resnet")  # doctest: +SKIP
    >>> resnet.ResNet34(feat_dim=80, embed_dim=256)  # doctest: +SKIP
"""

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import pytest


def _bare_packages(top: str, subpackages: tuple[str, ...]) -> None:
    """Register ``top`` and its ``subpackages`` as namespaces over their folders, without
    running their ``__init__.py``."""
    if isinstance(sys.modules.get(top), types.ModuleType) and getattr(
        sys.modules[top], "__bare__", False
    ):
        return
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"the reference package of {top} is not installed (the dev extra has it)")
    root = Path(next(iter(spec.submodule_search_locations)))
    for name in ("", *subpackages):
        dotted = f"{top}.{name}" if name else top
        module = types.ModuleType(dotted)
        module.__path__ = [str(root / name.replace(".", "/"))]
        module.__bare__ = True
        sys.modules[dotted] = module


def wespeaker(module: str) -> types.ModuleType:
    """``wespeaker.<module>`` (e.g. ``models.resnet``, ``utils.schedulers``)."""
    _bare_packages("wespeaker", ("models", "utils", "frontend"))
    return importlib.import_module(f"wespeaker.{module}")


def speakerlab(module: str) -> types.ModuleType:
    """``speakerlab.<module>`` (e.g. ``models.campplus.DTDNN``, ``models.eres2net.ERes2NetV2``)."""
    _bare_packages(
        "speakerlab", ("models", "models.campplus", "models.eres2net", "process", "utils")
    )
    return importlib.import_module(f"speakerlab.{module}")
