"""The ``wespeaker`` report section: WeSpeaker's VoxCeleb back end on the evaluation's table
(:mod:`speakerid.scoring.wespeaker`): mean subtraction, AS-norm over the training speakers'
means, QMF on its 13 quality measures (``conf/evaluation/wespeaker.yaml`` composes it)."""

import logging

import numpy as np
import torch
from torch import Tensor

from speakerid.analysis.report import EvalSet
from speakerid.analysis.sections import EvalContext, Section
from speakerid.errors import ConfigError
from speakerid.metrics import VerificationCurve, actual_dcf
from speakerid.scoring.calibration import bayes_threshold, cllr
from speakerid.scoring.wespeaker import (
    QMF_MEASURES,
    calibration_trials,
    qmf_measures,
    speaker_means,
    statistics,
    train_qmf,
    trial_scores,
)

log = logging.getLogger(__name__)


def _figures(scores: Tensor, labels: Tensor) -> dict:
    curve = VerificationCurve(scores.float(), labels)
    eer, threshold = curve.eer()
    return {
        "eer": eer,
        "min_dcf_p01": curve.min_dcf(p_target=0.01)[0],
        "min_dcf_p05": curve.min_dcf(p_target=0.05)[0],
        "threshold_eer": threshold,
    }


class WespeakerBackEnd:
    """WeSpeaker's scoring of the trials: ``mean_subtraction`` (cosine once the training mean
    is subtracted), ``as_norm`` (top ``top_n`` of one mean per training speaker) and ``qmf``
    (the AS-norm score calibrated on 13 quality measures, trained on ``calibration_trials``
    rounds of WeSpeaker's calibration trials among the training utterances).

    The cohort is ``evalset.cohort_rows``: every training utterance with
    ``evaluation.cohort_per_speaker: null``, embedded as WeSpeaker extracts it with
    ``evaluation.cohort_crop: train`` (one random crop of the training length each).
    """

    def __init__(
        self,
        top_n: int = 300,
        calibration_trials: int = 10000,
        max_duration: float = 20.0,
        p_target: float = 0.01,
        seed: int = 0,
    ) -> None:
        if top_n < 1 or calibration_trials < 2:
            raise ConfigError(
                f"wespeaker.top_n ({top_n}) must be >= 1, calibration_trials "
                f"({calibration_trials}) >= 2"
            )
        self.top_n, self.rounds, self.max_duration = top_n, calibration_trials, max_duration
        self.p_target, self.seed = p_target, seed

    def __call__(self, table: Tensor, evalset: EvalSet, context: EvalContext) -> Section:
        rows, utterances = evalset.cohort_rows, evalset.trials.utterances
        speakers = [utterances[r].speaker for r in rows.tolist()]
        if len(set(speakers)) < 2:
            return Section({"skipped": "the WeSpeaker back end needs a cohort of 2+ speakers"})
        mean = table[rows].double().mean(dim=0)  # score.py: the mean of every training embedding
        cohort, names = speaker_means(table[rows].double(), speakers)
        stats = statistics(table, mean, cohort, self.top_n)
        trials = evalset.trials
        cosine, normed = trial_scores(stats, trials.enroll, trials.test)
        report = {
            "cohort_utterances": len(rows),
            "cohort_speakers": len(names),
            "top_n": min(self.top_n, len(names)),
            "mean_subtraction": _figures(cosine, trials.labels),
            "as_norm": _figures(normed, trials.labels),
        }
        durations = torch.tensor([u.duration for u in utterances], dtype=torch.float64)
        x = qmf_measures(
            normed,
            trials.enroll,
            trials.test,
            durations,
            stats.magnitude,
            stats.cohort_mean,
            self.max_duration,
        )
        report["qmf"] = self._qmf(stats, rows, durations, speakers, x, trials.labels)
        return Section(report)

    def _qmf(
        self,
        stats,
        rows: Tensor,
        durations: Tensor,
        speakers: list[str],
        x: np.ndarray,
        labels: Tensor,
    ) -> dict:
        """QMF trained on WeSpeaker's calibration trials of the cohort and applied to the
        trials' (N,13) measures ``x``: their figures, or why there is none."""
        enroll, test, cal_labels = calibration_trials(
            durations[rows].tolist(), speakers, self.rounds, self.seed
        )
        if not cal_labels:
            why = "no two training speakers with both 2-6 s and over 6 s utterances"
            log.warning("QMF skipped: %s", why)
            return {"skipped": why}
        enroll, test = rows[torch.tensor(enroll)], rows[torch.tensor(test)]
        _, cal_normed = trial_scores(stats, enroll, test)
        quality = stats.magnitude, stats.cohort_mean, self.max_duration
        measures = qmf_measures(cal_normed, enroll, test, durations, *quality)
        weights, bias = train_qmf(measures, np.asarray(cal_labels))
        llr = x @ weights + bias
        threshold = bayes_threshold(self.p_target)
        return {
            **_figures(torch.from_numpy(llr), labels),
            "actual_dcf": actual_dcf(llr, labels, threshold, p_target=self.p_target),
            "p_target": self.p_target,
            "cllr": cllr(llr, labels.numpy()),
            "calibration_trials": len(cal_labels),
            "measures": list(QMF_MEASURES),
            "weights": [float(w) for w in weights],
            "bias": bias,
        }
