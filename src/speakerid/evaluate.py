"""``speakerid-eval ckpt_path=...``: rebuild a model from its checkpoint and score trials."""

import logging
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import RichProgressBar
from omegaconf import DictConfig, OmegaConf

from speakerid.cli import CONFIG_PATH, print_results, quiet_environment, report_user_errors
from speakerid.errors import ConfigError
from speakerid.utils.io import write_json

log = logging.getLogger(__name__)


def load_checkpoint(path: str | Path) -> dict:
    """Load a speakerid checkpoint safely (``weights_only``: tensors and plain containers only)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        raise ConfigError(
            f"{path}: not a loadable checkpoint ({type(err).__name__}: {str(err)[:200]})"
        ) from None
    if (
        not isinstance(checkpoint, dict)
        or "speakerid" not in checkpoint
        or "state_dict" not in checkpoint
    ):
        raise ConfigError(f"{path}: not a speakerid checkpoint (it holds no stored run config)")
    return checkpoint


def evaluate(cfg: DictConfig) -> dict:
    """Embed the trial list with the checkpoint's model; write and return ``eval.json``."""
    checkpoint = load_checkpoint(cfg.ckpt_path)
    run_cfg = OmegaConf.create(checkpoint["speakerid"]["config"])
    system = instantiate(run_cfg.system)
    try:
        system.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise ConfigError(
            f"{cfg.ckpt_path}: weights do not fit the stored config ({str(err)[:300]})"
        ) from None
    data_cfg = cfg.data if cfg.get("data") is not None else run_cfg.data
    overrides = {"num_workers": cfg.num_workers, "eval_batch_size": cfg.batch_size}
    if cfg.trials:
        overrides["test_trials"] = cfg.trials
    datamodule = instantiate(data_cfg, **overrides)
    trainer = L.Trainer(
        accelerator=cfg.accelerator,
        devices=1,
        precision=cfg.precision,
        logger=False,
        callbacks=[RichProgressBar()],
        enable_checkpointing=False,
    )
    (results,) = trainer.test(system, datamodule=datamodule, verbose=False)
    report = {
        "eer": results["test/eer"],
        "min_dcf_p01": results["test/min_dcf"],
        "min_dcf_p05": results["test/min_dcf_p05"],
        "threshold": results["test/eer_threshold"],
        "num_trials": len(datamodule.test_trials.labels),
        "num_utterances": len(datamodule.test_trials.utterances),
        "trials": str(datamodule.corpus.trial_path(datamodule.test_trials_name)),
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
    }
    out_dir = Path(cfg.output_dir) if cfg.output_dir else _run_folder(Path(cfg.ckpt_path))
    write_json(out_dir / "eval.json", report)
    log.info("Wrote %s", out_dir / "eval.json")
    return report


def _run_folder(ckpt_path: Path) -> Path:
    """The training run's folder: the parent of ``checkpoints/``, else the checkpoint's folder."""
    folder = ckpt_path.resolve().parent
    return folder.parent if folder.name == "checkpoints" else folder


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="eval")
@report_user_errors
def main(cfg: DictConfig) -> None:
    quiet_environment()
    torch.set_flush_denormal(True)
    report = evaluate(cfg)
    print_results(
        "speakerid-eval", {k: v for k, v in report.items() if k not in ("trials", "checkpoint")}
    )


if __name__ == "__main__":
    main()
