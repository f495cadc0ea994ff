"""The validation pass: every file's header read once, each problem handled by a policy.

Problems and the actions a policy may choose for them (the first is what ``on_bad_file=skip``
picks, ``fail`` what ``on_bad_file=error`` picks, unless ``policy`` names one; too-short files
and links out of the root are skipped either way):

=============  ================================  =========================================
problem        meaning                           actions
=============  ================================  =========================================
missing        listed (tsv, list) but not there  skip, fail
unreadable     no audio header / corrupt         skip, fail
empty          0 samples                         skip, fail
too_short      under ``min_seconds``             skip, fail
nonfinite      NaN or infinite samples           skip, fail
wrong_rate     not the corpus sample rate        resample, convert, skip, fail
multichannel   more than one channel             downmix, convert, skip, fail
outside_root   a symlink leading out of the      skip, fail
               corpus root (never followed)
=============  ================================  =========================================

``resample`` and ``downmix`` keep the file: rows get their length at the corpus rate and every
reader converts while reading (:func:`speakerid.data.audio.read_audio` with ``convert``).
``convert`` writes a 16-bit mono copy at the corpus rate once, into the cache, and the row points
there (for slow-to-decode or remote files read many times).

Only headers are read, except for floating-point files (``FLOAT``/``DOUBLE`` subtypes, the only
ones that can hold NaN or infinity): their samples are scanned once, in blocks. The pass is
cached with the manifest, so it costs nothing on later runs.
"""

import json
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from speakerid.data.audio import converted_length
from speakerid.errors import ConfigError, CorpusError
from speakerid.utils.io import atomic_open

log = logging.getLogger(__name__)

ACTIONS = {
    "missing": ("skip", "fail"),
    "unreadable": ("skip", "fail"),
    "empty": ("skip", "fail"),
    "too_short": ("skip", "fail"),
    "nonfinite": ("skip", "fail"),
    "wrong_rate": ("resample", "convert", "skip", "fail"),
    "multichannel": ("downmix", "convert", "skip", "fail"),
    "outside_root": ("skip", "fail"),
}


FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")  # integer and compressed encodings are always finite


def _nonfinite_samples(path: Path) -> int:
    """How many samples of a floating-point file are NaN or infinite (read in blocks)."""
    bad = 0
    for block in sf.blocks(str(path), blocksize=1 << 16, dtype="float32", always_2d=True):
        bad += int(block.size - np.count_nonzero(np.isfinite(block)))
    return bad


def make_policy(on_bad_file: str = "error", overrides: Mapping[str, str] | None = None) -> dict:
    """The action for every problem: ``on_bad_file`` (``error`` | ``skip``) for all, too-short
    files skipped either way, then the per-problem ``overrides``; bad names are refused."""
    if on_bad_file not in ("error", "skip"):
        raise ConfigError(f"on_bad_file must be 'error' or 'skip', got {on_bad_file!r}")
    policy = {p: "fail" if on_bad_file == "error" else "skip" for p in ACTIONS}
    policy["too_short"] = "skip"
    policy["outside_root"] = "skip"  # not a bad file: a link to elsewhere, counted in the report
    for problem, action in (overrides or {}).items():
        if problem not in ACTIONS:
            raise ConfigError(f"policy: unknown problem {problem!r}; known: {', '.join(ACTIONS)}")
        if action not in ACTIONS[problem]:
            raise ConfigError(
                f"policy.{problem}={action!r}: choose one of {', '.join(ACTIONS[problem])}"
            )
        policy[problem] = action
    return policy


@dataclass
class Checked:
    """A file that passed: its length at the corpus rate, and what was done to it."""

    num_samples: int
    fixes: tuple[str, ...] = ()


@dataclass
class ValidationReport:
    """What the pass found: every problem file with its action, and counts."""

    corpus: str
    files: int = 0
    kept: int = 0
    problems: list[dict] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        """problem -> action -> number of files."""
        out: dict[str, Counter] = {}
        for item in self.problems:
            out.setdefault(item["problem"], Counter())[item["action"]] += 1
        return {p: dict(c) for p, c in sorted(out.items())}

    def failures(self) -> list[dict]:
        return [p for p in self.problems if p["action"] == "fail"]

    def write(self, path: Path) -> None:
        summary = {"corpus": self.corpus, "files": self.files, "kept": self.kept}
        with atomic_open(path, "w") as f:
            json.dump({**summary, "counts": self.counts(), "problems": self.problems}, f, indent=1)


class Validator:
    """Checks files one by one against a policy, collecting a :class:`ValidationReport`."""

    def __init__(
        self, corpus: str, sample_rate: int, policy: dict, min_seconds: float = 0.0
    ) -> None:
        self.sample_rate = sample_rate
        self.policy = policy
        self.min_samples = int(min_seconds * sample_rate)
        self.report = ValidationReport(corpus)

    def problem(self, path: Path | str, problem: str, detail: str) -> str:
        """Record a problem; return its action."""
        action = self.policy[problem]
        self.report.problems.append(
            {"file": str(path), "problem": problem, "detail": detail, "action": action}
        )
        return action

    def check(self, path: Path) -> Checked | None:
        """The file's length at the corpus rate, or None when a problem leaves it out."""
        self.report.files += 1
        if not path.is_file():
            self.problem(path, "missing", "file not found")
            return None
        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError, TypeError) as err:
            self.problem(path, "unreadable", f"not a readable audio file ({err})")
            return None
        if info.frames <= 0:
            self.problem(path, "empty", "0 samples")
            return None
        if info.subtype in FLOAT_SUBTYPES:
            bad = _nonfinite_samples(path)
            if bad:
                self.problem(path, "nonfinite", f"{bad} NaN or infinite samples")
                return None
        fixes = []
        if info.samplerate != self.sample_rate:
            detail = f"sample rate {info.samplerate} Hz, expected {self.sample_rate} Hz"
            action = self.problem(path, "wrong_rate", detail)
            if action not in ("resample", "convert"):
                return None
            fixes.append(action)
        if info.channels != 1:
            detail = f"{info.channels} channels, expected mono"
            action = self.problem(path, "multichannel", detail)
            if action not in ("downmix", "convert"):
                return None
            fixes.append(action)
        samples = converted_length(int(info.frames), int(info.samplerate), self.sample_rate)
        if samples < self.min_samples:
            seconds = samples / self.sample_rate
            self.problem(path, "too_short", f"{seconds:.2f} s, under {self.min_samples} samples")
            return None
        self.report.kept += 1
        return Checked(samples, tuple(fixes))

    def finish(self, report_path: Path | None = None) -> ValidationReport:
        """Write the report (if a path is given), log the counts, and stop on any ``fail``."""
        report = self.report
        if report_path is not None:
            report.write(report_path)
        failures = report.failures()
        if failures:
            listing = "\n  ".join(f"{p['file']}: {p['detail']}" for p in failures[:10])
            more = f"\n  ... and {len(failures) - 10} more" if len(failures) > 10 else ""
            where = f" (report: {report_path})" if report_path else ""
            raise CorpusError(
                f"{len(failures)} bad audio file(s) in {report.corpus}{where}; set "
                f"on_bad_file=skip or a policy per problem to go on:\n  {listing}{more}"
            )
        handled = {p: c for p, c in report.counts().items()}
        if handled:
            log.warning(
                "%s: %d of %d files kept; %s",
                report.corpus,
                report.kept,
                report.files,
                "; ".join(f"{p}: {c}" for p, c in handled.items()),
            )
        return report
