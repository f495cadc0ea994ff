"""``speakerid-verify a.wav b.wav ckpt_path=...``: are two recordings the same speaker?

Prints the cosine score and the decision at the model's stored threshold (or ``threshold=``);
exits 0 for the same speaker, 1 for different speakers, 2 for an error.
"""

import sys
import traceback

import torch

from speakerid.cli import quiet_environment, report_user_errors, tool_config
from speakerid.data.speech import speech_gate
from speakerid.errors import ConfigError
from speakerid.inference import embed_files, load_system, resolve_threshold


def verify(argv: list[str]) -> tuple[float, float, bool]:
    """``(score, threshold, same_speaker)`` for the two files named in ``argv``."""
    cfg, files = tool_config("verify", argv)
    if len(files) != 2:
        raise ConfigError(f"give exactly two audio files, got {len(files)}: {' '.join(files)}")
    system, run_cfg, checkpoint = load_system(cfg.ckpt_path)
    threshold = resolve_threshold(cfg.threshold, checkpoint, cfg.ckpt_path)
    if threshold is None:
        raise ConfigError("threshold=null: verification needs a threshold")
    gate = speech_gate(cfg.speech_gate)
    a, b = embed_files(system, files, run_cfg.data.sample_rate, gate=gate)
    score = float(a @ b)
    return score, threshold, score > threshold


def main() -> None:
    quiet_environment()
    torch.set_flush_denormal(True)
    try:
        score, threshold, same = report_user_errors(verify)(sys.argv[1:])
    except Exception:  # a crash must never read as "different speakers" (exit status 1)
        traceback.print_exc()
        print("error: speakerid-verify failed (a bug: traceback above)", file=sys.stderr)
        sys.exit(2)
    verdict = "same speaker" if same else "different speakers"
    print(f"score {score:.4f}  threshold {threshold:.4f}  {verdict}")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
