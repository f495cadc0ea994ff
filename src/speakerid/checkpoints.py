"""The saved model's one home: what a speakerid checkpoint holds, and how a converter writes one.

A checkpoint is a ``torch.save``d dict that loads with ``weights_only=True``::

    {"state_dict": {name: tensor},              # the system's (front end, backbone, head)
     "speakerid": {"config": {...},              # the resolved run config (conf/train.yaml)
                   "version": ..., "git_commit": ...,   # the code that wrote it
                   "source": {...},              # a converted model: its toolkit, files, sha256
                   "thresholds": {...}}}         # operating points, stored by speakerid-eval

Training writes it through Lightning (``callbacks.ConfigInCheckpoint``); converters of other
toolkits' models write it with :func:`write_converted`, which builds the system from the config
first, so a checkpoint that cannot be loaded is never written.
"""

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from speakerid.errors import ConfigError
from speakerid.outputs import refuse_overlap
from speakerid.trusted import check_trusted
from speakerid.utils.io import atomic_path


def compose_run_config(overrides: list[str], output_dir: Path) -> DictConfig:
    """``conf/train.yaml`` with ``overrides``, resolved as a run would be (no run folder made)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException
    from omegaconf import open_dict
    from omegaconf.errors import OmegaConfBaseException

    from speakerid.cli import CONFIG_PATH, config_error_line

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(CONFIG_PATH, version_base="1.3"):
            cfg = compose(
                "train", [*overrides, f"paths.output_dir={output_dir}"], return_hydra_config=True
            )
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(config_error_line(err)) from None
    HydraConfig.instance().set_config(cfg)  # hydra: interpolations (the working directory)
    with open_dict(cfg):
        del cfg.hydra
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))


def read_weights(path: Path) -> object:
    """Another toolkit's weights file, loaded safely (``weights_only``: tensors and plain
    containers, no pickle).

    Raises:
        ConfigError: a damaged or foreign file, named.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        raise ConfigError(f"{path}: not loadable ({type(err).__name__})") from None


def write_converted(
    output: Path, config: DictConfig, weights: dict, source: dict, inputs: list[Path]
) -> dict:
    """Build the system of ``config``, load ``weights`` into it (every backbone tensor must be
    given; the front end's buffers follow from its settings, and a head's tensors are taken when
    given), and write it atomically as a speakerid checkpoint at ``output``.

    Args:
        output: the checkpoint file; never one of ``inputs``, never a file that is not a
            speakerid checkpoint.
        config: the resolved run config.
        weights: system state-dict entries (``backbone.*``, and ``features.*`` / ``loss.*``).
        source: provenance stored with the model (toolkit, model name, files and their sha256).
        inputs: the files converted.

    Returns:
        ``{"checkpoint": output, **source}``.
    """
    from hydra.utils import instantiate

    from speakerid.utils.loggers import code_version

    refuse_overlap(output, inputs, "output")
    _refuse_foreign_file(output)
    plain = check_trusted(OmegaConf.to_container(config, resolve=True), "the converted config")
    system = instantiate(config.system)
    state = system.state_dict()
    missing = sorted(k for k in state if k.startswith("backbone.") and k not in weights)
    unexpected = sorted(k for k in weights if k not in state)
    if missing or unexpected:
        raise ConfigError(
            f"{source.get('model', 'the model')}: its tensors do not fit speakerid's "
            f"{type(system.backbone).__name__} (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    system.load_state_dict({**state, **weights})
    checkpoint = {
        "state_dict": system.state_dict(),
        "speakerid": {"config": plain, **code_version(), "source": source},
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp:
        torch.save(checkpoint, tmp)
    return {"checkpoint": str(output), **source}


def _refuse_foreign_file(output: Path) -> None:
    """A converter replaces only a speakerid checkpoint (a re-conversion), nothing else."""
    if not output.exists():
        return
    try:
        held = torch.load(output, map_location="cpu", weights_only=True)
    except Exception:  # any unreadable or foreign file: refused below
        held = None
    if not (isinstance(held, dict) and "speakerid" in held):
        raise ConfigError(
            f"output={output}: exists and is not a speakerid checkpoint (nothing is overwritten): "
            "choose another output"
        )
