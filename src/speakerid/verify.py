"""``speakerid-verify a.wav b.wav ckpt_path=...``: are two recordings the same speaker?

Prints the cosine score and the decision at the model's stored threshold (or ``threshold=``),
and the calibrated log-likelihood ratio when ``speakerid-eval`` stored a calibration with the
model; exits 0 for the same speaker, 1 for different speakers, 2 for an error.
"""

import sys
import traceback

import torch

from speakerid.cli import quiet_environment, report_user_errors, tool_config
from speakerid.data.speech import speech_gate
from speakerid.errors import ConfigError
from speakerid.inference import embed_files, load_system, resolve_threshold, stored_thresholds
from speakerid.scoring.calibration import Calibration, quality_features


def verify(argv: list[str]) -> tuple[float, float, bool, float | None]:
    """``(score, threshold, same_speaker, llr)`` for the two files named in ``argv`` (``llr``:
    None when the model has no stored calibration)."""
    cfg, files = tool_config("verify", argv)
    if len(files) != 2:
        raise ConfigError(f"give exactly two audio files, got {len(files)}: {' '.join(files)}")
    system, run_cfg, checkpoint = load_system(cfg.ckpt_path)
    threshold = resolve_threshold(cfg.threshold, checkpoint, cfg.ckpt_path)
    if threshold is None:
        raise ConfigError("threshold=null: verification needs a threshold")
    gate = speech_gate(cfg.speech_gate)
    (a, b), norms, samples = embed_files(
        system, files, run_cfg.data.sample_rate, gate=gate, quality=True
    )
    score = float(a @ b)
    return score, threshold, score > threshold, calibrated_llr(checkpoint, score, norms, samples)


def calibrated_llr(checkpoint: dict, score: float, norms, samples) -> float | None:
    """The stored calibration's log-likelihood ratio of one trial (cosine scoring), or None."""
    stored = stored_thresholds(checkpoint).get("calibration")
    if not stored:
        return None
    calibration = Calibration.from_dict(stored)
    x = quality_features(
        torch.tensor([score]),
        torch.tensor([0]),
        torch.tensor([1]),
        samples,
        norms,
        calibration.features,
    )
    return float(calibration.llr(x)[0])


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
