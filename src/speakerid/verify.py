"""``speakerid-verify a.wav b.wav ckpt_path=...``: are two recordings the same speaker?

Prints the cosine score and the decision at the operating point stored with the model (or
``threshold=``; which one is said on stderr), and the calibrated log-likelihood ratio when
``speakerid-eval`` stored a calibration with the model that beat the raw scores on held-out
trials; exits 0 for the same speaker, 1 for different speakers, 2 for an error. The work is
:mod:`speakerid.api`'s (``speakerid.load(path).verify(a, b)``).
"""

import sys
import traceback

import torch

from speakerid.api import Decision, load
from speakerid.cli import quiet_environment, report_user_errors, tool_config
from speakerid.data.speech import speech_gate
from speakerid.errors import ConfigError


def verify(argv: list[str]) -> Decision:
    """The :class:`~speakerid.api.Decision` ``(score, threshold, same, llr)`` for the two files
    named in ``argv`` (``llr``: None when the model has no stored calibration); the operating
    point is said on stderr."""
    cfg, files = tool_config("verify", argv)
    if len(files) != 2:
        raise ConfigError(f"give exactly two audio files, got {len(files)}: {' '.join(files)}")
    gate = speech_gate(cfg.speech_gate)  # settings first: no model is loaded for a typo
    model = load(cfg.ckpt_path, cfg.threshold, gate, cfg.max_seconds)
    if cfg.threshold is None:
        raise ConfigError("threshold=null: verification needs a threshold")
    decision = model.verify(*files)
    print(model.operating_point.describe(), file=sys.stderr)  # after any error: one line each
    return decision


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
