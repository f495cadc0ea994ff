"""Starting a run from another checkpoint, and guarded fine-tuning.

``init_from=CKPT`` starts the system from a speakerid checkpoint (trained or converted): its
backbone always, its loss head too with ``init_head=inherit`` (WeSpeaker's large-margin stage
loads the whole averaged model, the ArcMargin head and its speed-copy classes included), and its
front end when fine-tuning. ``experiment=finetune`` (a ``finetune:`` node) builds the run's model
from the checkpoint's own front end and backbone, freezes what ``finetune.freeze`` says, and after
training tests the starting model and the fine-tuned one on the same held-out trials: the better
is the run's result (``checkpoints/kept.ckpt``), so fine-tuning never hands back a model worse
than it started from.
"""

import copy
import logging
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from speakerid.errors import ConfigError
from speakerid.inference import load_checkpoint, save_thresholds, upgraded_config
from speakerid.trusted import check_trusted
from speakerid.utils.io import atomic_path

log = logging.getLogger(__name__)
HEADS = ("fresh", "inherit")
KEPT = "kept.ckpt"


def finetune_config(cfg: DictConfig) -> DictConfig:
    """The run's config; with a ``finetune`` node, a new one whose front end and backbone (and
    loss head, when inherited) are the checkpoint's: the model fine-tuned is the model stored."""
    if cfg.get("init_head", "fresh") not in HEADS:
        raise ConfigError(f"init_head: fresh or inherit, got {cfg.init_head!r}")
    if not cfg.get("finetune"):
        return cfg
    if not cfg.get("init_from"):
        raise ConfigError("experiment=finetune needs init_from=<a speakerid checkpoint>")
    if not cfg.test:
        raise ConfigError("experiment=finetune needs test=true: its guard tests both models")
    freeze_setting(cfg.finetune.get("freeze", "nothing"))  # refused before any work
    stored = stored_config(cfg.init_from)
    rate = stored.get("data", {}).get("sample_rate")
    if rate is not None and rate != cfg.data.sample_rate:
        raise ConfigError(
            f"init_from={cfg.init_from}: a {rate} Hz model, but data.sample_rate="
            f"{cfg.data.sample_rate}: set data.sample_rate={rate} data.corpus.sample_rate={rate}"
        )
    tuned = copy.deepcopy(cfg)
    OmegaConf.update(tuned, "features", stored["features"], merge=False)
    OmegaConf.update(tuned, "model.backbone", stored["model"]["backbone"], merge=False)
    if cfg.init_head == "inherit":
        OmegaConf.update(tuned, "loss", stored["loss"], merge=False)
    return tuned


def stored_config(ckpt_path: str) -> dict:
    """The resolved run config a checkpoint holds (checked against the allowlist)."""
    stored = load_checkpoint(ckpt_path)["speakerid"].get("config")
    if not isinstance(stored, dict) or not {"features", "model", "loss"} <= set(stored):
        raise ConfigError(f"{ckpt_path}: its stored config has no front end, model or loss")
    return check_trusted(upgraded_config(stored), ckpt_path)


def initialize(system: nn.Module, ckpt_path: str, head: str, front_end: bool = False) -> None:
    """Load a checkpoint's backbone into ``system`` (and its loss head with ``head=inherit``,
    its front end with ``front_end``); whatever is not loaded starts fresh.

    Raises:
        ConfigError: the checkpoint has no such weights, or their shapes do not fit; one line.
    """
    state = load_checkpoint(ckpt_path)["state_dict"]
    parts = [("backbone", "its backbone does not fit this one")]
    if front_end:
        parts.append(("features", "its front end does not fit this one"))
    if head == "inherit":
        parts.append(("loss", "init_head=inherit: its loss head does not fit this run's"))
    for part, misfit in parts:
        weights = {k.removeprefix(f"{part}."): v for k, v in state.items() if k.startswith(part)}
        module = getattr(system, part)
        if not weights and part == "backbone":
            raise ConfigError(f"{ckpt_path}: no backbone weights in this checkpoint")
        if not weights and not module.state_dict():
            continue  # a parameter-free head (triplet) or front end: nothing to inherit
        try:
            module.load_state_dict(weights)
        except RuntimeError as err:
            reason = _first_misfit(str(err))
            hint = " (set init_head=fresh)" if part == "loss" else ""
            raise ConfigError(f"{ckpt_path}: {misfit} ({reason}){hint}") from None
    log.info("%s initialized from %s", " + ".join(p for p, _ in parts), ckpt_path)


def _first_misfit(message: str) -> str:
    """The first specific line of PyTorch's ``load_state_dict`` error."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return (lines[1] if len(lines) > 1 else lines[0])[:300]


def freeze_setting(value) -> str | int:
    """``finetune.freeze``: ``nothing``, ``backbone``, or a number of blocks >= 1."""
    if value in ("nothing", "backbone") or (
        isinstance(value, int) and not isinstance(value, bool) and value >= 1
    ):
        return value
    raise ConfigError(
        f"finetune.freeze={value!r}: nothing, backbone, or N >= 1 (the backbone's first N blocks)"
    )


def backbone_blocks(module: nn.Module, prefix: str = "") -> list[tuple[str, list[nn.Module]]]:
    """A backbone's blocks in input-to-output order: its top-level layers, with lists and
    sequences of layers expanded, a wrapper of one model looked through, and a recurrent
    layer split into its stacked layers. Each block is ``(name, [modules])``; a recurrent
    layer's blocks are ``(name.l<k>, [the RNN])`` (its ``_l<k>`` parameters)."""
    children = [(n, c) for n, c in module.named_children() if _trainable(c)]
    if len(children) == 1 and next(module.parameters(recurse=False), None) is None:
        name, child = children[0]
        if not isinstance(child, nn.RNNBase):
            return backbone_blocks(child, f"{prefix}{name}.")
    blocks = []
    for name, child in children:
        if isinstance(child, nn.ModuleList | nn.Sequential):
            blocks += [(f"{prefix}{name}.{i}", [m]) for i, m in enumerate(child) if _trainable(m)]
        elif isinstance(child, nn.RNNBase):
            blocks += [(f"{prefix}{name}.l{k}", [child]) for k in range(child.num_layers)]
        else:
            blocks.append((f"{prefix}{name}", [child]))
    return blocks


def _trainable(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def freeze(backbone: nn.Module, setting: str | int) -> list[nn.Module]:
    """Stop the gradients of the frozen part of ``backbone`` (``finetune.freeze``); return its
    batch-norm layers, which :class:`KeepFrozen` keeps in eval mode (their statistics fixed)."""
    setting = freeze_setting(setting)
    if setting == "nothing":
        return []
    blocks = backbone_blocks(backbone)
    if setting == "backbone":
        chosen, names = list(backbone.parameters()), ["the whole backbone"]
        modules = [backbone]
    else:
        if setting > len(blocks):
            raise ConfigError(
                f"finetune.freeze={setting}: this backbone has {len(blocks)} blocks "
                f"({', '.join(n for n, _ in blocks)})"
            )
        chosen, names, modules = [], [n for n, _ in blocks[:setting]], []
        for name, block in blocks[:setting]:
            modules += block
            chosen += _block_parameters(name, block)
    for p in chosen:
        p.requires_grad_(False)
    log.info("frozen: %s", ", ".join(names))
    return [m for top in modules for m in top.modules() if isinstance(m, _BatchNorm)]


def _block_parameters(name: str, block: list[nn.Module]) -> list[nn.Parameter]:
    """A block's parameters; a recurrent layer's block only its layer's (``*_l<k>[_reverse]``)."""
    if isinstance(block[0], nn.RNNBase):
        layer = name.rsplit(".l", 1)[1]
        rnn = block[0]
        return [p for n, p in rnn.named_parameters() if n.split("_l")[-1].split("_")[0] == layer]
    return [p for m in block for p in m.parameters()]


class KeepFrozen(L.Callback):
    """Keeps the frozen batch-norm layers in eval mode while training (Lightning sets the whole
    model to train mode at each epoch and after each validation)."""

    def __init__(self, norms: list[nn.Module]) -> None:
        self.norms = norms

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        for norm in self.norms:
            norm.eval()


def guard(trainer: L.Trainer, system, datamodule, start: dict, tested: dict, ckpt: str | None):
    """Test the starting weights ``start`` on the same held-out trials as the fine-tuned ones
    (``tested``: their test results, from ``ckpt``), keep the better as ``checkpoints/kept.ckpt``
    and return the run's metrics (the kept model's, and both EERs)."""
    tuned = copy.deepcopy(system.state_dict())
    system.load_state_dict(start)
    (started,) = trainer.test(system, datamodule=datamodule, verbose=False)
    keep_start = not tested["test/eer"] < started["test/eer"]
    kept = started if keep_start else tested
    source = ckpt or _last_checkpoint(trainer)
    path = Path(source).parent / KEPT
    if trainer.global_rank == 0:
        _write_kept(start if keep_start else tuned, source, path)
    verdict = (
        "the fine-tuned model is not better: the starting model is kept"
        if keep_start
        else "the fine-tuned model is kept"
    )
    print(
        f"fine-tuning: held-out test EER {100 * started['test/eer']:.2f} % at the start, "
        f"{100 * tested['test/eer']:.2f} % fine-tuned: {verdict} ({path})",
        flush=True,
    )
    return {
        **kept,
        "finetune/start_eer": started["test/eer"],
        "finetune/tuned_eer": tested["test/eer"],
        "finetune/start_kept": float(keep_start),
    }, path


def _write_kept(state: dict, source: str, target: Path) -> None:
    """``target``: the tested checkpoint ``source`` (the run's config, its training state)
    holding the kept weights."""
    checkpoint = load_checkpoint(source)
    checkpoint["state_dict"] = {k: v.detach().cpu() for k, v in state.items()}
    checkpoint["speakerid"].pop("thresholds", None)  # the kept model's follow
    with atomic_path(target) as tmp:
        torch.save(checkpoint, tmp)


def _last_checkpoint(trainer: L.Trainer) -> str:
    last = [c.best_model_path for c in trainer.checkpoint_callbacks if not c.monitor]
    if not last or not last[0]:
        raise ConfigError("experiment=finetune needs callbacks.last_checkpoint (last.ckpt)")
    return last[0]


def store_kept_thresholds(path: Path, results: dict, far_target: float, trials: str) -> None:
    """The kept model's test thresholds, in ``kept.ckpt`` (``speakerid-verify``)."""
    save_thresholds(
        path,
        {
            "scoring": "cosine",
            "eer": results["test/eer_threshold"],
            "far": results["test/far_threshold"],
            "far_target": far_target,
            "trials": trials,
        },
    )
