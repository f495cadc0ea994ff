"""``speakerid-eval ckpt_path=...``: rebuild a model from its checkpoint and evaluate it.

One pass embeds each needed utterance once (trial utterances, the trial speakers' other
utterances, a cohort of training speakers); the report (verification with cohort normalizations,
identification, similarity matrix, clustering) and its PNGs go to the training run's folder and to
the configured loggers; the cosine operating thresholds are stored in the checkpoint.
"""

import json
import logging
import sys
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import RichProgressBar
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Subset

from speakerid.analysis.logging import log_report
from speakerid.analysis.report import EvalSet, build_eval_set
from speakerid.analysis.sections import EvalContext, run_sections
from speakerid.analysis.thresholds import check_operating_point, stored_points, summary_rows
from speakerid.cli import hydra_entry, print_results, quiet_environment
from speakerid.contracts import Classifier
from speakerid.data.corpora import FolderCorpus
from speakerid.data.datasets import CropDataset, collate
from speakerid.data.loaders import eval_loader
from speakerid.data.speech import SpeechTally, speech_tally
from speakerid.errors import ConfigError
from speakerid.inference import load_checkpoint, load_system, save_thresholds, stored_thresholds
from speakerid.outputs import claim_folder, refuse_overlap
from speakerid.runs import Stopped, StopPredicting
from speakerid.settings import EMBEDDING, check_settings
from speakerid.systems.encoder import embedding_table
from speakerid.utils.io import writable_folder, write_json
from speakerid.utils.loggers import close_loggers

__all__ = ["evaluate", "load_checkpoint", "main"]
log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate the checkpoint ``cfg.ckpt_path``; write and return ``eval.json``'s content."""
    check_settings(cfg, EMBEDDING)
    _check_operating_point(cfg.evaluation)
    system, run_cfg, checkpoint = load_system(cfg.ckpt_path)
    out_dir = Path(cfg.output_dir) if cfg.output_dir else _run_folder(Path(cfg.ckpt_path))
    writable_folder(out_dir, "evaluation report")  # before the embedding, not after
    data_cfg = cfg.data if cfg.get("data") is not None else run_cfg.data
    overrides = {
        "num_workers": cfg.num_workers,
        "eval": {
            "batch_size": cfg.batch_size,
            "crops": cfg.crops,
            "crop_seconds": cfg.crop_seconds,
        },
    }
    if cfg.trials:  # the list's speakers are the test: no generated test list
        overrides.update(test_trials=cfg.trials, test_speakers=0)
        if cfg.get("data") is not None:  # a corpus not trained on: no validation split either
            overrides["val_speakers"] = 0  # (its other speakers are the cohort)
    if data_cfg.sample_rate != run_cfg.data.sample_rate:
        raise ConfigError(
            f"data.sample_rate={data_cfg.sample_rate}, but the model was trained at "
            f"{run_cfg.data.sample_rate} Hz: set data.sample_rate={run_cfg.data.sample_rate} "
            f"data.corpus.sample_rate={run_cfg.data.sample_rate}"
        )
    datamodule = instantiate(data_cfg, **overrides)
    datamodule.prepare_data()
    datamodule.setup("test")
    refuse_overlap(out_dir, [datamodule.manifest.root], "output_dir")
    claim_folder(out_dir, "output_dir", _no_foreign_report)
    num_trial_utterances = len(datamodule.test_trials.utterances)
    cohort = _cohort_rows(cfg, datamodule) if cfg.get("cohort_dir") else None
    evalset = build_eval_set(datamodule, cfg.evaluation.cohort_per_speaker, cfg.seed, cohort)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    tally = speech_tally(cfg.get("speech_gate"), datamodule.sample_rate, cfg.crops)
    cohort_crop = _cohort_crop_seconds(cfg.evaluation.get("cohort_crop"), run_cfg)
    table = _embed(system, evalset, datamodule, cfg, loggers, tally, cohort_crop)
    no_speech = (
        0 if tally is None else tally.warn(log, [u.utt_id for u in evalset.trials.utterances])
    )
    context = EvalContext(
        out_dir,
        stored_thresholds(checkpoint).get("eer"),
        _classifier(system, 1 + len(run_cfg.data.get("speed_classes") or [])),
    )
    sections = {name: instantiate(node) for name, node in cfg.evaluation.sections.items()}
    report, images = run_sections(sections, table, evalset, context)
    verification = sections.get("verification")
    if verification is not None:  # the primary scoring's figures lead the report
        report = {**_headline(report["verification"], verification.primary), **report}
    cosine = report.get("verification", {}).get("cosine")
    report.update(_counts(evalset, num_trial_utterances, no_speech, cfg, datamodule))
    report["images"] = {name: str(path) for name, path in images.items()}
    write_json(out_dir / "eval.json", report)
    log.info("Wrote %s and %d images", out_dir / "eval.json", len(images))
    if _store_thresholds(cfg, run_cfg) and cosine is not None:
        save_thresholds(cfg.ckpt_path, _operating_points(report, cosine, cfg.evaluation))
    log_report(loggers, report, images)
    close_loggers(loggers)
    return report


def _counts(
    evalset: EvalSet, num_trial_utterances: int, no_speech: int, cfg: DictConfig, datamodule
) -> dict:
    """The report's account of what was evaluated: trials, utterances, cohort, embedding."""
    return {
        "num_trials": len(evalset.trials.labels),
        "num_trial_utterances": num_trial_utterances,
        "num_utterances": len(evalset.trials.utterances),
        "num_cohort": len(evalset.cohort_rows),
        "cohort_speakers": sorted(
            {evalset.trials.utterances[r].speaker for r in evalset.cohort_rows.tolist()}
        ),
        "num_without_speech": no_speech,
        "embedding": f"{cfg.crops} x {cfg.crop_seconds} s crops" if cfg.crops else "full",
        "trials": str(datamodule.corpus.trial_path(datamodule.test_trials_name)),
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
    }


def _operating_points(report: dict, cosine: dict, evaluation: DictConfig) -> dict:
    """What the checkpoint stores for speakerid-verify and -identify: the cosine EER and FAR
    thresholds, the thresholds table's points and the chosen one, and a kept calibration."""
    calibration = report.get("calibration", {}).get("cosine", {}).get("model")
    return {
        "scoring": "cosine",
        "eer": cosine["threshold_eer"],
        "far": cosine["threshold_far"],
        "far_target": cosine["far_target"],
        "trials": report["trials"],
        **stored_points(report.get("thresholds"), evaluation.get("operating_point", "eer")),
        **({"calibration": calibration} if calibration else {}),
    }


def _check_operating_point(evaluation: DictConfig) -> None:
    section = (evaluation.get("sections") or {}).get("thresholds")
    far_targets = None if section is None else list(section.far_targets)
    check_operating_point(evaluation.get("operating_point", "eer"), far_targets)


def _store_thresholds(cfg: DictConfig, run_cfg: DictConfig) -> bool:
    """``save_thresholds``; null: only when the trials are the run's own test list (an ad-hoc
    list must not move the operating point that ``speakerid-verify`` uses)."""
    if cfg.save_thresholds is not None:
        return bool(cfg.save_thresholds)
    own = run_cfg.data.get("test_trials")
    if cfg.trials and cfg.trials != own:
        log.info(
            "Thresholds in the checkpoint kept: %s is not the run's test list %s "
            "(save_thresholds=true stores this evaluation's)",
            cfg.trials,
            own,
        )
        return False
    return True


def _cohort_rows(cfg: DictConfig, datamodule) -> list:
    """The utterances of ``cohort_dir`` (a :class:`FolderCorpus`: one folder per speaker), as
    rows with absolute paths and ``cohort:`` ids, so they never collide with the data's."""
    corpus = FolderCorpus(
        cfg.cohort_dir,
        str(Path(cfg.paths.data_dir) / "cache"),
        sample_rate=datamodule.sample_rate,
        policy={"wrong_rate": "resample", "multichannel": "downmix"},
    )
    manifest = corpus.manifest()
    return [
        u._replace(
            utt_id=f"cohort:{u.utt_id}",
            path=str(manifest.audio_path(u).resolve()),
            speaker=f"cohort:{u.speaker}",
        )
        for u in manifest
    ]


class _SpeechCheck(L.Callback):
    """Feeds every prediction batch to a :class:`SpeechTally`."""

    def __init__(self, tally: SpeechTally) -> None:
        self.tally = tally

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.tally.add(batch.wav, batch.lengths, batch.index)


def _cohort_crop_seconds(choice: str | None, run_cfg: DictConfig) -> float | None:
    """``evaluation.cohort_crop``: None (the cohort embedded as the trials are), or ``train``:
    one random crop per cohort utterance of the run's training length (``data.crop_seconds``),
    as WeSpeaker's ``extract_vox.sh`` embeds its training set (batches of 16: crops)."""
    if choice is None:
        return None
    if choice != "train":
        raise ConfigError(f"evaluation.cohort_crop: null or train, got {choice!r}")
    return float(run_cfg.data.crop_seconds)


def _embed(
    system,
    evalset: EvalSet,
    datamodule,
    cfg: DictConfig,
    loggers: list,
    tally: SpeechTally | None = None,
    cohort_crop: float | None = None,
) -> torch.Tensor:
    """(U,D) embeddings of the evaluation's utterances, through ``trainer.predict`` (each batch
    checked for speech by ``tally``, if given); with ``cohort_crop`` (seconds) the cohort's
    rows hold one seeded random crop of that length each instead."""
    trainer = L.Trainer(
        accelerator=cfg.accelerator,
        devices=1,
        precision=cfg.precision,
        logger=loggers or False,
        callbacks=[
            RichProgressBar(),
            StopPredicting("embedding the evaluation's utterances"),
            *([] if tally is None else [_SpeechCheck(tally)]),
        ],
        enable_checkpointing=False,
    )
    loader = eval_loader(
        evalset.trials,
        datamodule.manifest,
        datamodule.eval,
        datamodule.sample_rate,
        cfg.num_workers,
    )
    crops = max(datamodule.eval.crops, 1)
    if cohort_crop is not None:  # the cohort's rows are embedded from crops below
        cohort = set(evalset.cohort_rows.tolist())
        kept = [i for i in range(len(loader.dataset)) if i // crops not in cohort]
        loader = DataLoader(
            Subset(loader.dataset, kept), batch_size=loader.batch_size, collate_fn=collate
        )
    batches = trainer.predict(system, dataloaders=loader)
    table = embedding_table(
        torch.cat([e for e, _ in batches]),
        torch.cat([r for _, r in batches]),
        len(evalset.trials.utterances),
        crops,
    )
    if cohort_crop is not None and len(evalset.cohort_rows):
        loader = _cohort_crops(evalset, datamodule, cohort_crop, cfg.seed)
        batches = trainer.predict(system, dataloaders=loader)
        table[torch.cat([r for _, r in batches])] = torch.cat([e for e, _ in batches])
    return table


def _cohort_crops(evalset: EvalSet, datamodule, seconds: float, seed: int) -> DataLoader:
    """The cohort's utterances as one random crop of ``seconds`` each (seeded per row; a shorter
    file repeated to fill it), 16 a batch, each batch item carrying its table row."""
    rows = evalset.trials.utterances
    dataset = CropDataset(
        [datamodule.manifest.audio_path(u) for u in rows],
        [u.num_samples for u in rows],
        np.full(len(rows), -1),
        int(seconds * datamodule.sample_rate),
        datamodule.sample_rate,
    )
    items = [(r, seed + r) for r in evalset.cohort_rows.tolist()]
    return DataLoader(dataset, batch_size=16, sampler=items, collate_fn=collate)


def _headline(verification: dict, primary: str) -> dict:
    """The primary scoring's figures, for the top of the report."""
    figures = verification[primary]
    return {
        "eer": figures["eer"],
        "min_dcf_p01": figures["min_dcf_p01"],
        "min_dcf_p05": figures["min_dcf_p05"],
        "scoring": primary,
        "threshold": figures["threshold_eer"],
    }


def _classifier(system: torch.nn.Module, copies: int = 1):
    """Embeddings -> the loss head's class logits (None for heads without a classifier).

    With speed-perturbed copies as classes (``data.speed_classes``), a speaker's score is the
    best of its copies', so predictions name training speakers."""
    classify = system.loss.classify if isinstance(system.loss, Classifier) else None

    @torch.inference_mode()
    def logits(embeddings: torch.Tensor) -> torch.Tensor | None:
        if classify is None:
            return None
        out = classify(embeddings)
        return out.reshape(len(out), copies, -1).amax(1) if copies > 1 else out

    return logits


REPORT_FILES = (
    "eval.json",
    "det_curve.png",
    "score_histogram.png",
    "similarity_matrix.png",
    "embedding_map.png",
)


def _no_foreign_report(folder: Path) -> bool:
    """Whether an evaluation may write into ``folder``: its report files are missing, or they are
    an earlier evaluation's (eval.json names a checkpoint and its trials)."""
    report = folder / "eval.json"
    if not report.is_file():
        return not any((folder / name).exists() for name in REPORT_FILES)
    try:
        return {"checkpoint", "trials", "num_trials"} <= set(json.loads(report.read_text()))
    except (OSError, ValueError, TypeError):
        return False


def _run_folder(ckpt_path: Path) -> Path:
    """The training run's folder: the parent of ``checkpoints/``, else the checkpoint's folder."""
    folder = ckpt_path.resolve().parent
    return folder.parent if folder.name == "checkpoints" else folder


def summary(report: dict) -> dict:
    """The headline figures of a report, for the console."""
    rows = {}
    if "verification" in report:
        rows = {f"{report['scoring']} eer": report["eer"], "min_dcf_p01": report["min_dcf_p01"]}
        for name, figures in report["verification"].items():
            if name != report["scoring"]:
                rows[f"{name} eer"] = figures["eer"]
    for name in ("mean_subtraction", "as_norm", "qmf"):
        figures = report.get("wespeaker", {}).get(name, {})
        if "eer" in figures:
            rows[f"wespeaker {name} eer"] = figures["eer"]
    if "top1" in report.get("identification", {}):
        ident = report["identification"]
        rows.update({f"identification {k}": ident[k] for k in ("top1", "top5") if k in ident})
        rows["open-set accuracy"] = ident["open_set_accuracy"]
    if "top1" in report.get("identification_classifier", {}):
        rows["classifier top1"] = report["identification_classifier"]["top1"]
    if "similarity_matrix" in report:
        rows["similarity-matrix accuracy"] = report["similarity_matrix"]["accuracy"]
    for method, scores in report.get("clustering", {}).items():
        if isinstance(scores, dict):
            rows[f"{method} NMI (k={scores['num_clusters']})"] = scores["nmi"]
    rows.update(summary_rows(report.get("thresholds")))
    rows["trials"] = report["num_trials"]
    return rows


@hydra_entry("eval")
def main(cfg: DictConfig) -> None:
    quiet_environment()
    torch.set_flush_denormal(True)
    try:
        results = evaluate(cfg)
    except Stopped as stop:  # SIGTERM / Ctrl+C while embedding: exit 143 / 130
        print(f"stopped: {stop.line}", file=sys.stderr, flush=True)
        raise
    print_results("speakerid-eval", summary(results))


if __name__ == "__main__":
    main()
