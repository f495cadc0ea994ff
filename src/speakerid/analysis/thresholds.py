"""Thresholds to deploy: the report section (``evaluation.sections.thresholds``) that gives the
cosine threshold at the EER and at each target false-accept rate, with bootstrap intervals over
speakers, for 1, 3 and 5 enrolment recordings per speaker and per duration band of the test clip,
and says where too few trials stand behind a figure (:mod:`speakerid.metrics.bootstrap`).
"""

import itertools
import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.nn.functional import normalize

from speakerid.analysis.report import EvalSet
from speakerid.analysis.sections import EvalContext, Section
from speakerid.errors import ConfigError
from speakerid.metrics import VerificationCurve
from speakerid.metrics.bootstrap import enough_trials, far_point, speaker_bootstrap

log = logging.getLogger(__name__)
CHUNK = 8192  # trials whose (k,D) enrolment embeddings are gathered at once


def enrolment_scores(
    table: Tensor, evalset: EvalSet, k: int, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Cosine scores of the trials with ``k`` enrolment recordings per speaker model.

    A trial's model is the mean of the L2-normalized embeddings of its enrolment utterance and
    ``k - 1`` other utterances of that speaker, never its test utterance: for each enrolment
    utterance its speaker's other utterances are shuffled once (seeded) and the first ``k - 1``
    that are not the test utterance are taken. Trials whose speaker has too few are left out.

    Returns:
        ``(scores, kept)``: (M,) scores of the (M,) trials ``kept`` (indices into the list).
    """
    trials, normed = evalset.trials, normalize(table.float(), dim=1)
    if k == 1:
        return (normed[trials.enroll] * normed[trials.test]).sum(1), torch.arange(
            len(trials.enroll)
        )
    speaker = [u.speaker for u in trials.utterances]
    by_speaker: dict[str, list[int]] = {}
    for row in evalset.analysis_rows.tolist():
        by_speaker.setdefault(speaker[row], []).append(row)
    rng = np.random.default_rng(seed)
    pools: dict[int, list[int]] = {}
    rows, kept = [], []
    for i, (e, t) in enumerate(zip(trials.enroll.tolist(), trials.test.tolist(), strict=True)):
        if e not in pools:
            others = [r for r in by_speaker.get(speaker[e], []) if r != e]
            pools[e] = [others[j] for j in rng.permutation(len(others))]
        companions = [r for r in pools[e] if r != t][: k - 1]
        if len(companions) == k - 1:
            rows.append([e, *companions])
            kept.append(i)
    if not rows:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    index, kept_t = torch.tensor(rows), torch.tensor(kept)
    test = trials.test[kept_t]
    scores = torch.cat(
        [
            (
                normalize(normed[index[s : s + CHUNK]].mean(1), dim=1) * normed[test[s : s + CHUNK]]
            ).sum(1)
            for s in range(0, len(index), CHUNK)
        ]
    )
    return scores, kept_t


def band_names(edges: Sequence[float]) -> list[str]:
    """``all`` and one name per duration band: edges (2, 5) -> ``0-2s``, ``2-5s``, ``5s+``."""
    bounds = [0.0, *edges]
    names = [f"{lo:g}-{hi:g}s" for lo, hi in itertools.pairwise(bounds)]
    return ["all", *names, f"{bounds[-1]:g}s+"]


class Thresholds:
    """The deployment thresholds table (docs/evaluation.md, "Choosing an operating point").

    Args:
        far_targets: false-accept rates whose threshold is reported (``far@<rate>``).
        enrolments: recordings per speaker model (1: the trial list as it is).
        duration_bands: edges in seconds of the test clip's duration bands.
        resamples: bootstrap resamples (of speakers); 0: no intervals.
        confidence: of the percentile intervals.
        min_errors: the too-few-trials rule: a rate is trusted when rate × trials ≥ this.
        seed: of the enrolment draws and the bootstrap.
    """

    def __init__(
        self,
        far_targets: Sequence[float] = (0.01, 0.001),
        enrolments: Sequence[int] = (1, 3, 5),
        duration_bands: Sequence[float] = (2.0, 5.0, 10.0),
        resamples: int = 1000,
        confidence: float = 0.95,
        min_errors: int = 30,
        seed: int = 0,
    ) -> None:
        if not all(0 < f < 1 for f in far_targets) or not all(int(k) >= 1 for k in enrolments):
            raise ConfigError(
                f"thresholds: far_targets {list(far_targets)} must lie in (0, 1) and "
                f"enrolments {list(enrolments)} be 1 or more"
            )
        if list(duration_bands) != sorted(set(duration_bands)) or not 0 < confidence < 1:
            raise ConfigError(
                f"thresholds: duration_bands {list(duration_bands)} must rise, and confidence "
                f"{confidence} lie in (0, 1)"
            )
        self.far_targets, self.enrolments = [float(f) for f in far_targets], list(enrolments)
        self.edges = [float(e) for e in duration_bands]
        self.resamples, self.confidence = int(resamples), float(confidence)
        self.min_errors, self.seed = int(min_errors), seed

    def __call__(self, table: Tensor, evalset: EvalSet, context: EvalContext) -> Section:
        trials = evalset.trials
        utterances = trials.utterances
        speakers = np.array([utterances[i].speaker for i in trials.enroll.tolist()])
        seconds = np.array([utterances[i].duration for i in trials.test.tolist()])
        band = np.digitize(seconds, self.edges) + 1  # 1 ... len(edges) + 1; 0 is "all"
        labels = trials.labels.numpy()
        report: dict = {
            "scoring": "cosine",
            "resampled": "speakers",
            "resamples": self.resamples,
            "confidence": self.confidence,
            "min_errors": self.min_errors,
            "rule": f"a rate r on n trials stands on r*n errors; trusted when r*n >= "
            f"{self.min_errors} (Doddington's rule of 30)",
            "far_targets": self.far_targets,
        }
        for k in self.enrolments:
            scores, kept = enrolment_scores(table, evalset, int(k), self.seed)
            kept_np = kept.numpy()
            rows = {}
            for b, name in enumerate(band_names(self.edges)):
                mask = np.ones(len(kept_np), bool) if b == 0 else band[kept_np] == b
                rows[name] = self.row(
                    scores.numpy()[mask], labels[kept_np][mask], speakers[kept_np][mask]
                )
            report[f"enrol_{k}"] = rows
        self._warn(report)
        return Section(report)

    def row(self, scores: np.ndarray, labels: np.ndarray, speakers: np.ndarray) -> dict:
        """One cell of the table: its trial counts, and each operating point's threshold,
        interval over speakers, the errors it stands on and whether that is enough."""
        targets = int((labels == 1).sum())
        others = len(labels) - targets
        row: dict = {
            "trials": len(labels),
            "target_trials": targets,
            "nontarget_trials": others,
            "speakers": len(set(speakers.tolist())),
        }
        if targets == 0 or others == 0:
            return {**row, "skipped": "needs target and non-target trials"}
        curve = VerificationCurve(scores, labels)
        intervals = {}
        if self.resamples > 0:
            intervals = speaker_bootstrap(
                scores,
                labels,
                speakers,
                self.far_targets,
                self.resamples,
                self.confidence,
                self.seed,
            )
        eer, threshold = curve.eer()
        points = {"eer": (threshold, {"rate": eer}, eer, min(targets, others))}
        for far in self.far_targets:
            at, miss = curve.at_far(far)
            points[far_point(far)] = (at, {"miss": miss}, far, others)
        for name, (threshold, figures, rate, count) in points.items():
            low, high = intervals.get(name, (None, None))
            row[name] = {
                "threshold": threshold,
                "low": low,
                "high": high,
                **figures,
                "errors": rate * count,
                "enough_trials": enough_trials(rate, count, self.min_errors),
            }
        return row

    def _warn(self, report: dict) -> None:
        """One warning naming the operating points of the whole trial list (1 enrolment, all
        durations) that stand on too few trials."""
        cell = report.get("enrol_1", {}).get("all", {})
        weak = [
            f"{name} ({cell[name]['errors']:.1f} errors on {cell['trials']} trials)"
            for name in ["eer", *map(far_point, self.far_targets)]
            if name in cell and not cell[name]["enough_trials"]
        ]
        if weak:
            log.warning(
                "Too few trials behind %s: the thresholds there are rough (%s)",
                ", ".join(weak),
                report["rule"],
            )


def point_names(far_targets: Sequence[float]) -> list[str]:
    """The operating points the table reports: ``eer`` and ``far@<rate>`` of each target."""
    return ["eer", *map(far_point, far_targets)]


def check_operating_point(choice: str, far_targets: Sequence[float] | None) -> None:
    """Refuse an ``evaluation.operating_point`` the thresholds table does not report (before
    any embedding): ``eer``, or ``far@<rate>`` of ``far_targets`` (None: the section is off)."""
    names = point_names(far_targets or ())
    if choice not in names:
        raise ConfigError(
            f"evaluation.operating_point={choice}: choose one of {', '.join(names)}"
            + ("" if far_targets is not None else " (evaluation.sections.thresholds is off)")
        )


def stored_points(section: dict | None, choice: str) -> dict:
    """What the model stores of the table (1 enrolment recording, all durations): the threshold
    at each FAR target, the chosen operating point, the intervals and the too-few-trials flags
    of each point, and the thresholds with 3, 5, ... enrolment recordings."""
    cell = (section or {}).get("enrol_1", {}).get("all", {})
    if "eer" not in cell:
        return {"operating_point": "eer"}
    names = point_names(section["far_targets"])
    by_enrolment = {
        key.removeprefix("enrol_"): {n: value["all"][n]["threshold"] for n in names}
        for key, value in section.items()
        if key.startswith("enrol_") and key != "enrol_1" and "eer" in value.get("all", {})
    }
    return {
        "far_targets": {
            f"{far:g}": cell[far_point(far)]["threshold"] for far in section["far_targets"]
        },
        "operating_point": choice,
        "intervals": {
            n: [cell[n]["low"], cell[n]["high"]] for n in names if cell[n]["low"] is not None
        },
        "enough_trials": {n: cell[n]["enough_trials"] for n in names},
        "by_enrolment": by_enrolment,
    }


def summary_rows(section: dict | None) -> dict[str, str]:
    """The console's lines of the table: each operating point of the whole trial list with its
    interval, and a mark where too few trials stand behind it."""
    cell = (section or {}).get("enrol_1", {}).get("all", {})
    rows = {}
    for name in point_names(section["far_targets"]) if "eer" in cell else ():
        point = cell[name]
        shown = f"{point['threshold']:.4f}"
        if point["low"] is not None:
            shown += f" [{point['low']:.4f}, {point['high']:.4f}]"
        rows[f"{name} threshold"] = shown + ("" if point["enough_trials"] else " too few trials")
    return rows
