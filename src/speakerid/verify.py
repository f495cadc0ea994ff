"""``speakerid-verify a.wav b.wav ckpt_path=...``: are two recordings the same speaker?

Prints the cosine score and the decision at the model's stored threshold (or ``threshold=``),
and the calibrated log-likelihood ratio when ``speakerid-eval`` stored a calibration with the
model that beat the raw scores on held-out trials; exits 0 for the same speaker, 1 for different
speakers, 2 for an error.
"""

import logging
import sys
import traceback

import torch

from speakerid.cli import quiet_environment, report_user_errors, tool_config
from speakerid.data.speech import speech_gate
from speakerid.errors import ConfigError
from speakerid.inference import embed_files, load_system, resolve_threshold, stored_thresholds
from speakerid.scoring.calibration import Calibration, quality_features

log = logging.getLogger(__name__)


def verify(argv: list[str]) -> tuple[float, float, bool, float | None]:
    """``(score, threshold, same_speaker, llr)`` for the two files named in ``argv`` (``llr``:
    None when the model has no stored calibration)."""
    cfg, files = tool_config("verify", argv)
    if len(files) != 2:
        raise ConfigError(f"give exactly two audio files, got {len(files)}: {' '.join(files)}")
    gate = speech_gate(cfg.speech_gate)  # settings first: no model is loaded for a typo
    system, run_cfg, checkpoint = load_system(cfg.ckpt_path)
    threshold = resolve_threshold(cfg.threshold, checkpoint, cfg.ckpt_path)
    if threshold is None:
        raise ConfigError("threshold=null: verification needs a threshold")
    (a, b), norms, samples = embed_files(
        system,
        files,
        run_cfg.data.sample_rate,
        gate=gate,
        quality=True,
        max_seconds=cfg.max_seconds,
    )
    score = float(a @ b)
    return score, threshold, score > threshold, calibrated_llr(checkpoint, score, norms, samples)


def calibrated_llr(checkpoint: dict, score: float, norms, samples) -> float | None:
    """The stored calibration's log-likelihood ratio of one trial (cosine scoring), or None:
    none stored, or one that did not beat no information and the raw scores on held-out trials
    (said in a warning: an LLR from it would mislead more than the score)."""
    stored = stored_thresholds(checkpoint).get("calibration")
    if not stored:
        return None
    try:
        calibration = Calibration.from_dict(stored)
        problem = calibration.problem()
        one = (torch.tensor([score]), torch.tensor([0]), torch.tensor([1]), samples, norms)
        x = quality_features(*one, calibration.features)
        llr = None if problem else float(calibration.llr(x)[0])
    except (KeyError, TypeError, ValueError) as err:  # a damaged or hand-made entry
        problem, llr = f"unreadable: {type(err).__name__}: {err}", None
    if problem:
        log.warning(
            "no llr: the calibration stored with the model is not used (%s); "
            "`speakerid-eval ckpt_path=...` calibrates it anew",
            problem,
        )
    return llr


def main() -> None:
    quiet_environment()
    torch.set_flush_denormal(True)
    try:
        score, threshold, same, llr = report_user_errors(verify)(sys.argv[1:])
    except Exception:  # a crash must never read as "different speakers" (exit status 1)
        traceback.print_exc()
        print("error: speakerid-verify failed (a bug: traceback above)", file=sys.stderr)
        sys.exit(2)
    verdict = "same speaker" if same else "different speakers"
    calibrated = "" if llr is None else f"  llr {llr:.3f}"
    print(f"score {score:.4f}  threshold {threshold:.4f}  {verdict}{calibrated}")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
