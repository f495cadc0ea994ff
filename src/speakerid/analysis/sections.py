"""The sections of ``speakerid-eval``'s report, each one callable with one signature:

``section(table (U,D), evalset, context) -> Section(report, images)``

Their settings are constructor arguments, and ``conf/evaluation/`` lists them by ``_target_``
under ``sections:`` in report order: a new scoring or clustering method is one class here (or
anywhere importable) and one YAML entry. A section may read what earlier sections reported
(``context.report``); ``null`` in the config leaves a section out.
"""

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple, Protocol

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from speakerid.analysis import plots
from speakerid.analysis.report import (
    EvalSet,
    TooFewSpeakers,
    classifier_identification,
    clustering,
    cohort_matrix,
    embedding_map_points,
    identification,
    score_pairs,
    score_trials,
    verification,
)
from speakerid.analysis.similarity import similarity_matrix
from speakerid.errors import ConfigError
from speakerid.metrics import VerificationCurve

log = logging.getLogger(__name__)


class Section(NamedTuple):
    """What a section adds: its part of ``eval.json`` and the images it wrote (name -> PNG)."""

    report: dict
    images: Mapping[str, Path] = MappingProxyType({})


@dataclass(frozen=True)
class EvalContext:
    """What a section may need besides the embeddings: where images go, the threshold stored
    with the model, the model's classifier (embeddings -> logits, or None), and the report of
    the sections before it."""

    out_dir: Path
    stored_threshold: float | None = None
    classifier: Callable[[Tensor], Tensor | None] | None = None
    report: Mapping[str, dict] = field(default_factory=dict)


class ReportSection(Protocol):
    """The contract of a section: ``(table, evalset, context) -> Section``."""

    def __call__(self, table: Tensor, evalset: EvalSet, context: EvalContext) -> Section: ...


def _settings(**values) -> DictConfig:
    return OmegaConf.create(values)


class Verification:
    """EER, minDCF (0.01, 0.05), actual DCF and thresholds for each scoring (``cosine``,
    ``mean_subtraction``, ``as_norm``); ``primary`` names the one behind the headline figures."""

    def __init__(
        self,
        scorings: Sequence[str] = ("cosine", "mean_subtraction", "as_norm"),
        primary: str = "cosine",
        top_k: int = 100,
        far: float = 0.01,
        cohort: str = "utterances",
    ) -> None:
        if primary not in scorings:
            raise ConfigError(f"verification.primary={primary!r} is not among {list(scorings)}")
        if cohort not in ("utterances", "speaker_means"):
            raise ConfigError(f"verification.cohort={cohort!r}: utterances or speaker_means")
        self.cfg = _settings(scorings=list(scorings), top_k=top_k, far=far, cohort=cohort)
        self.primary = primary

    def __call__(self, table: Tensor, evalset: EvalSet, context: EvalContext) -> Section:
        report, _ = verification(table, evalset, self.cfg, context.stored_threshold)
        if self.primary not in report:
            raise ConfigError(
                f"verification.primary={self.primary!r} was not computed (no cohort for it?)"
            )
        return Section(report)


class Calibration:
    """Quality-measure calibration (:mod:`speakerid.scoring.calibration`) of each scoring:
    a regularized logistic regression from the score and the two utterances' log durations and
    embedding norms to an LLR, trained on trials of the cohort's (training) speakers, never the
    test ones.

    The cohort speakers are split in two seeded halves: trials among the second half are
    scored with the first half as their normalization cohort (a speaker never normalizes its
    own trials), and train the regression. It needs ``per_parameter`` trials per parameter in
    each class. Reports, per scoring, the test trials' actual DCF before (at the uncalibrated
    score's EER threshold) and after (calibrated LLRs at the Bayes threshold of ``p_target``),
    with minDCF and Cllr; the test trials are held out from its training, and a calibration is
    kept (``model``) only when its Cllr there is below 1 and below the raw scores'. Otherwise
    ``kept`` is false, ``why`` says why, and one warning names every scoring left out.
    """

    def __init__(
        self,
        scorings: Sequence[str] = ("cosine", "as_norm"),
        features: Sequence[str] = ("score", "duration", "norm"),
        top_k: int = 100,
        cohort: str = "utterances",
        p_target: float = 0.01,
        max_trials: int = 20000,
        seed: int = 0,
        per_parameter: int = 10,
        regularization: float = 1.0,
    ) -> None:
        if per_parameter < 1 or not regularization > 0:
            raise ConfigError(
                f"calibration.per_parameter={per_parameter} must be at least 1 and "
                f"calibration.regularization={regularization} above 0"
            )
        self.scorings, self.features = list(scorings), list(features)
        self.top_k, self.cohort, self.p_target = top_k, cohort, p_target
        self.max_trials, self.seed = max_trials, seed
        self.per_parameter, self.regularization = per_parameter, regularization

    def __call__(self, table: Tensor, evalset: EvalSet, context: EvalContext) -> Section:
        pairs = self._calibration_pairs(evalset)
        if pairs is None:
            return Section({"skipped": "calibration needs a cohort of at least 4 speakers"})
        normalizing, enroll, test, labels = pairs
        report: dict = {"trained_on_trials": len(labels), "features": self.features}
        cohort = cohort_matrix(table, normalizing, evalset, self.cohort)
        for scoring in self.scorings:
            cal_scores = score_pairs(table, enroll, test, cohort, scoring, self.top_k)
            report[scoring] = self._calibrate(table, evalset, scoring, cal_scores, pairs)
        left_out = {s: report[s]["why"] for s in self.scorings if not report[s]["kept"]}
        if left_out:
            log.warning(
                "Calibration not kept (no LLRs from it, none stored with the model): %s",
                "; ".join(f"{scoring}: {why}" for scoring, why in left_out.items()),
            )
        return Section(report)

    def _calibrate(
        self, table: Tensor, evalset: EvalSet, scoring: str, cal_scores: Tensor, pairs: tuple
    ) -> dict:
        """One scoring's calibration, fitted on ``cal_scores`` of the calibration ``pairs`` and
        judged on the test trials: its figures, and ``model`` if it is kept."""
        from speakerid.scoring.calibration import Calibration as Fitted
        from speakerid.scoring.calibration import quality_features

        _, enroll, test, labels = pairs
        samples = torch.tensor(
            [u.num_samples for u in evalset.trials.utterances], dtype=torch.float64
        )
        norms, trials = table.double().norm(dim=1), evalset.trials
        x = quality_features(cal_scores, enroll, test, samples, norms, self.features)
        try:
            fitted = Fitted.fit(
                x, labels.numpy(), self.features, scoring, self.regularization, self.per_parameter
            )
        except ValueError as err:  # too few trials, or one class only
            return {"kept": False, "why": str(err)}
        raw = score_trials(table, evalset, scoring, self.top_k, self.cohort)
        held_out = quality_features(raw, trials.enroll, trials.test, samples, norms, self.features)
        fitted = fitted.assessed(held_out, raw.numpy(), trials.labels.numpy())
        figures = self._figures(raw, fitted.llr(held_out), trials.labels)
        why = fitted.problem()
        kept = {"kept": True, "model": fitted.to_dict()} if why is None else {"kept": False}
        return {
            **figures,
            "cllr_before": fitted.cllr_uncalibrated,
            "cllr_after": fitted.cllr,
            **kept,
            **({"why": why} if why else {}),
        }

    def _figures(self, raw: Tensor, llr: np.ndarray, labels: Tensor) -> dict:
        """EER, minDCF and actual DCF of the test trials before and after calibration."""
        from speakerid.metrics import actual_dcf
        from speakerid.scoring.calibration import bayes_threshold

        before = VerificationCurve(raw, labels)
        after = VerificationCurve(torch.from_numpy(llr), labels)
        eer_before, threshold_before = before.eer()
        p = self.p_target
        return {
            "eer_before": eer_before,
            "eer_after": after.eer()[0],
            "min_dcf_before": before.min_dcf(p_target=p)[0],
            "min_dcf_after": after.min_dcf(p_target=p)[0],
            "actual_dcf_before": actual_dcf(raw, labels, threshold_before, p_target=p),
            "actual_dcf_after": actual_dcf(llr, labels, bayes_threshold(p), p_target=p),
            "p_target": p,
        }

    def _calibration_pairs(self, evalset: EvalSet):
        """(normalizing cohort rows, enroll rows, test rows, labels) of the calibration trials:
        every same-speaker pair of the second half of the cohort's speakers (at most half of
        ``max_trials``), and as many different-speaker pairs drawn at random."""
        rows = evalset.cohort_rows
        speakers = [evalset.trials.utterances[r].speaker for r in rows.tolist()]
        names = sorted(set(speakers))
        if len(names) < 4:
            return None
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(names))
        second = {names[i] for i in order[len(names) // 2 :]}
        normalizing = rows[[s not in second for s in speakers]]
        by_speaker: dict[str, list[int]] = {}
        for r, s in zip(rows.tolist(), speakers, strict=True):
            if s in second:
                by_speaker.setdefault(s, []).append(r)
        same = [(a, b) for rs in by_speaker.values() for i, a in enumerate(rs) for b in rs[i + 1 :]]
        if len(same) > self.max_trials // 2:
            same = [same[i] for i in rng.choice(len(same), self.max_trials // 2, replace=False)]
        pool = [(r, s) for s, rs in by_speaker.items() for r in rs]
        different = []
        while len(different) < len(same):
            i, j = rng.integers(len(pool), size=2)
            if pool[i][1] != pool[j][1]:
                different.append((pool[i][0], pool[j][0]))
        if not same:
            return None
        pairs = torch.tensor(same + different, dtype=torch.long)
        labels = torch.tensor([1] * len(same) + [0] * len(different))
        return normalizing, pairs[:, 0], pairs[:, 1], labels


class Identification:
    """Enrolment-based identification of the trial speakers: top-k, KNN, nearest centroid and
    open set (``threshold``; None: this evaluation's cosine EER threshold)."""

    def __init__(
        self,
        enrol_per_speaker: int = 5,
        unknown_speakers: int = 4,
        top_k: Sequence[int] = (1, 5),
        knn_k: int = 5,
        knn_weighting: str = "majority",
        threshold: float | None = None,
        seed: int = 0,
    ) -> None:
        self.cfg = _settings(
            enrol_per_speaker=enrol_per_speaker,
            unknown_speakers=unknown_speakers,
            top_k=list(top_k),
            knn_k=knn_k,
            knn_weighting=knn_weighting,
            seed=seed,
        )
        self.threshold = threshold

    def __call__(self, table: Tensor, evalset: EvalSet, context: EvalContext) -> Section:
        threshold = self.threshold
        if threshold is None:
            ver = context.report.get("verification")
            if not ver or "cosine" not in ver:
                raise ConfigError(
                    "identification.threshold=null takes the cosine EER threshold: list the "
                    "verification section (with cosine) before it, or set a threshold"
                )
            threshold = ver["cosine"]["threshold_eer"]
        embeddings, labels = table[evalset.analysis_rows], evalset.analysis_labels
        try:
            return Section(identification(embeddings, labels, self.cfg, threshold))
        except TooFewSpeakers as err:
            return Section({"skipped": str(err)})


class ClassifierIdentification:
    """Closed-set identification of the training speakers' identification-split files by the
    model's own classifier (only when the data has ``iden_split`` and the head classifies)."""

    def __init__(self, top_k: Sequence[int] = (1, 5)) -> None:
        self.top_k = tuple(top_k)

    def __call__(self, table: Tensor, evalset: EvalSet, context: EvalContext) -> Section:
        if not len(evalset.iden_rows):
            return Section({"skipped": "no identification split (data.iden_split is null)"})
        logits = (
            None if context.classifier is None else context.classifier(table[evalset.iden_rows])
        )
        return Section(classifier_identification(logits, evalset.iden_labels, self.top_k))


class SimilarityMatrix:
    """GE2E's speaker similarity matrix of the trial speakers; its accuracy, and a heat map of
    the first ``max_speakers`` (``plot``)."""

    def __init__(self, max_speakers: int = 40, plot: bool = True) -> None:
        self.max_speakers, self.plot = max_speakers, plot

    def __call__(self, table: Tensor, evalset: EvalSet, context: EvalContext) -> Section:
        _, matrix, correct = similarity_matrix(
            table[evalset.analysis_rows], evalset.analysis_labels
        )
        report = {"accuracy": float(correct.float().mean())}
        if not self.plot:
            return Section(report)
        shown = min(len(evalset.speakers), self.max_speakers)
        image = plots.similarity_heatmap(
            matrix[:shown, :shown].numpy(),
            evalset.speakers[:shown],
            context.out_dir / "similarity_matrix.png",
            report["accuracy"],
        )
        return Section(report, {"similarity_matrix": image})


class Clustering:
    """Each clustering method's scores (purity, F1, NMI, ARI, ...) against the true speakers,
    with one ``k`` for all (given, or chosen by ``k_selection``)."""

    def __init__(
        self,
        methods: Sequence[str] = ("kmeans", "spectral", "agglomerative_complete"),
        k: int | None = None,
        k_selection: str = "eigengap",
        max_k: int = 60,
        neighbours: int = 10,
        max_utterances: int = 4000,
        seed: int = 0,
    ) -> None:
        self.cfg = _settings(
            methods=list(methods),
            k=k,
            k_selection=k_selection,
            max_k=max_k,
            neighbours=neighbours,
            max_utterances=max_utterances,
            seed=seed,
        )

    def __call__(self, table: Tensor, evalset: EvalSet, context: EvalContext) -> Section:
        embeddings, labels = table[evalset.analysis_rows], evalset.analysis_labels
        return Section(clustering(embeddings, labels, self.cfg))


class Plots:
    """DET curve and score histogram of one scoring, and a 2-D map of ``map_speakers``
    speakers' embeddings (t-SNE or PCA)."""

    def __init__(
        self,
        scoring: str = "cosine",
        top_k: int = 100,
        far: float = 0.01,
        map_speakers: int = 10,
        map_projection: str = "tsne",
        seed: int = 0,
    ) -> None:
        self.scoring, self.top_k, self.far = scoring, top_k, far
        self.map_speakers, self.map_projection, self.seed = map_speakers, map_projection, seed

    def __call__(self, table: Tensor, evalset: EvalSet, context: EvalContext) -> Section:
        labels = evalset.trials.labels
        scores = score_trials(table, evalset, self.scoring, self.top_k)
        curve = VerificationCurve(scores, labels)
        eer, eer_threshold = curve.eer()
        far_threshold = curve.at_far(self.far)[0]
        out = context.out_dir
        images = {
            "det_curve": plots.det_plot(scores, labels, out / "det_curve.png", eer),
            "score_histogram": plots.score_histogram(
                scores,
                labels,
                out / "score_histogram.png",
                {"EER": eer_threshold, f"FAR {self.far:g}": far_threshold},
            ),
        }
        embeddings, speaker_labels = table[evalset.analysis_rows], evalset.analysis_labels
        rng = np.random.default_rng(self.seed)
        count = min(self.map_speakers, len(evalset.speakers))
        chosen = np.sort(rng.choice(len(evalset.speakers), count, replace=False))
        keep = torch.isin(speaker_labels, torch.from_numpy(chosen))
        points = embedding_map_points(embeddings[keep].numpy(), self.map_projection, self.seed)
        relabel = {int(s): i for i, s in enumerate(chosen)}
        images["embedding_map"] = plots.embedding_map(
            points,
            np.array([relabel[int(s)] for s in speaker_labels[keep]]),
            [evalset.speakers[i] for i in chosen],
            out / "embedding_map.png",
            f"Embeddings of {count} speakers ({self.map_projection.upper()})",
        )
        return Section({"scoring": self.scoring, "images": sorted(images)}, images)


def run_sections(
    sections: Mapping[str, ReportSection | None],
    table: Tensor,
    evalset: EvalSet,
    context: EvalContext,
) -> tuple[dict, dict[str, Path]]:
    """Every configured section in order; the report (section name -> its part) and images."""
    report: dict = {}
    images: dict[str, Path] = {}
    for name, section in sections.items():
        if section is None:
            continue
        part = section(table, evalset, replace(context, report=report))
        report[name] = part.report
        images.update(part.images)
    return report, images
