"""``speakerid-enhance data.store=...``: train an embedding enhancer on an embedding store, write
the enhanced store, and report original vs enhanced EER/minDCF on the same trials.
"""

import logging
import sys
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from speakerid.cli import hydra_entry, print_results, quiet_environment
from speakerid.data import enhancement_lists
from speakerid.data.embedding_store import StoreWriter
from speakerid.runs import Stopped, make_trainer, resume_checkpoint, run_stage
from speakerid.settings import ENHANCE, check_settings
from speakerid.utils.io import write_json
from speakerid.utils.loggers import close_loggers

log = logging.getLogger(__name__)
FIGURES = ("eer", "min_dcf", "min_dcf_p05")


def enhance(cfg: DictConfig) -> dict:
    """Fit, test (final weights), write the enhanced store and lists; return the report."""
    check_settings(cfg, ENHANCE)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    system = instantiate(cfg.system)
    trainer, loggers = make_trainer(cfg)
    resume = resume_checkpoint(cfg)
    run_stage(trainer, lambda: trainer.fit(system, datamodule=datamodule, ckpt_path=resume))
    (results,) = run_stage(
        trainer, lambda: trainer.test(system, datamodule=datamodule, verbose=False)
    )
    out_dir = Path(cfg.paths.output_dir)
    report = {
        "original": {k: results[f"test/{k}_original"] for k in FIGURES},
        "enhanced": {k: results[f"test/{k}"] for k in FIGURES},
        "loss": cfg.loss._target_.rsplit(".", 1)[-1],
        "store": str(Path(cfg.data.store).resolve()),
        "num_trials": len(datamodule.test_trials.labels),
        "train_embeddings": len(datamodule.train_rows),
        "speakers": len(datamodule.speakers),
    }
    if cfg.write_store:
        report["enhanced_store"] = str(_write_enhanced(system, datamodule, out_dir / "enhanced"))
    if cfg.write_lists:
        _write_lists(datamodule, out_dir / "lists", cfg.seed)
    write_json(out_dir / "enhance.json", report)
    close_loggers(loggers)
    return report


@torch.inference_mode()
def _write_enhanced(system, datamodule, root: Path) -> Path:
    """Every store utterance through the enhancer, as a store of one embedding per utterance."""
    system.eval()
    outputs = [system(x).float().cpu().numpy() for x, _ in datamodule.all_embeddings()]
    enhanced = np.concatenate(outputs)[:, None, :]
    store = datamodule.store
    meta = {**store.meta, "enhanced_from": str(store.root.resolve())}
    writer = StoreWriter(root, store.index, 1, enhanced.shape[2], meta, len(store))
    writer.write_shard(0, enhanced)
    return writer.finish().root


def _write_lists(datamodule, folder: Path, seed: int) -> None:
    """The four list kinds over the training (and, for ``test``, the test) utterances."""
    store = datamodule.store
    rows = store.utterances(datamodule.train_rows.tolist())
    for kind in ("normal", "triplet", "distribution"):
        enhancement_lists.write(
            folder / f"{kind}.txt", enhancement_lists.generate(kind, rows, seed)
        )
    test_rows = datamodule.test_trials.rows.tolist() if datamodule.test_trials else []
    if test_rows:
        lines = enhancement_lists.generate("test", store.utterances(test_rows), seed)
        enhancement_lists.write(folder / "test.txt", lines)


@hydra_entry("enhance")
def main(cfg: DictConfig) -> None:
    quiet_environment()
    try:
        report = enhance(cfg)
    except Stopped as stop:  # SIGTERM / Ctrl+C: checkpoint saved, exit 143 / 130
        print(f"stopped: {stop.line}", file=sys.stderr, flush=True)
        raise
    table = {f"original {k}": report["original"][k] for k in FIGURES}
    table.update({f"enhanced {k}": report["enhanced"][k] for k in FIGURES})
    print_results(f"speakerid-enhance ({report['loss']})", table)


if __name__ == "__main__":
    main()
