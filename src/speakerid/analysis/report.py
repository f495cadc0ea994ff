"""What the evaluation report computes: verification (+ cohort normalization), identification and
clustering, all from one table of embeddings of unique utterances.

:func:`build_eval_set` extends a data module's test trials with the other utterances the
analyses need (every utterance of the trial speakers, and a cohort from the training speakers),
so one pass embeds each utterance once; the report's sections (:mod:`speakerid.analysis.sections`)
turn the embedding table into the report and the PNG files.
"""

import logging
from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import DictConfig
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from torch import Tensor
from torch.nn.functional import normalize

from speakerid.analysis.clustering import choose_k, cluster
from speakerid.data.trialset import TrialSet
from speakerid.errors import ConfigError
from speakerid.metrics import VerificationCurve, actual_dcf
from speakerid.metrics.clustering import clustering_scores
from speakerid.metrics.identification import (
    UNKNOWN,
    centroids,
    knn_scores,
    open_set_rates,
    reject_unknown,
    topk_accuracy,
)
from speakerid.scoring import as_norm, cosine_scores, subtract_mean

log = logging.getLogger(__name__)
SCORINGS = ("cosine", "mean_subtraction", "as_norm")


class TooFewSpeakers(ValueError):
    """The trial speakers cannot make the enrolment/test split asked for."""


@dataclass(frozen=True)
class EvalSet:
    """What one evaluation embeds: trial utterances, the trial speakers' other utterances and a
    cohort, as rows of one table (``trials.utterances``)."""

    trials: TrialSet
    speakers: list[str]  # the trial speakers; analysis label i is speakers[i]
    analysis_rows: Tensor  # (A,) every utterance of the trial speakers
    analysis_labels: Tensor  # (A,)
    cohort_rows: Tensor  # (C,) training-speaker utterances for score normalization
    iden_rows: Tensor  # (I,) identification split-3 files of the training speakers (may be empty)
    iden_labels: Tensor  # (I,) their class index


def build_eval_set(
    datamodule, cohort_per_speaker: int | None, seed: int = 0, cohort_source: list | None = None
) -> EvalSet:
    """Gather the utterances of an evaluation from a set-up :class:`SpeakerDataModule`; the
    cohort is ``cohort_per_speaker`` utterances of each speaker (None: all of them) of
    ``cohort_source`` rows when given, else of the training rows."""
    trials = datamodule.test_trials
    if trials is None:
        raise ConfigError("evaluation needs a trial list (data.test_trials is null)")
    speakers = sorted({u.speaker for u in trials.utterances})
    label = {s: i for i, s in enumerate(speakers)}
    analysis = [u for u in datamodule.manifest if u.speaker in label]
    rng = np.random.default_rng(seed)
    cohort = []
    if cohort_per_speaker is None or cohort_per_speaker > 0:
        by_speaker: dict[str, list] = {}
        for u in datamodule.train_rows if cohort_source is None else cohort_source:
            by_speaker.setdefault(u.speaker, []).append(u)
        for rows in by_speaker.values():
            count = len(rows) if cohort_per_speaker is None else min(cohort_per_speaker, len(rows))
            picked = rng.choice(len(rows), count, replace=False)
            cohort += [rows[i] for i in sorted(picked)]
    iden = list(datamodule.iden_test_rows)
    classes = {s: i for i, s in enumerate(datamodule.speakers)}
    extended, rows = trials.extended(analysis + cohort + iden)
    a, c = len(analysis), len(analysis) + len(cohort)
    return EvalSet(
        extended,
        speakers,
        rows[:a],
        torch.tensor([label[u.speaker] for u in analysis], dtype=torch.long),
        rows[a:c],
        rows[c:],
        torch.tensor([classes[u.speaker] for u in iden], dtype=torch.long),
    )


def _verification_figures(
    scores: Tensor, labels: Tensor, far: float, stored: float | None
) -> dict[str, float | str]:
    curve = VerificationCurve(scores, labels)  # one sort for every figure
    eer, threshold = curve.eer()
    far_threshold, miss_at_far = curve.at_far(far)
    decision = threshold if stored is None else stored
    return {
        "eer": eer,
        "min_dcf_p01": curve.min_dcf(p_target=0.01)[0],
        "min_dcf_p05": curve.min_dcf(p_target=0.05)[0],
        "actual_dcf_p01": actual_dcf(scores, labels, decision, p_target=0.01),
        "actual_dcf_threshold": decision,
        "threshold_eer": threshold,
        "threshold_far": far_threshold,
        "miss_at_far": miss_at_far,
    }


def score_trials(
    table: Tensor, evalset: EvalSet, scoring: str, top_k: int = 100, cohort_mode: str = "utterances"
) -> Tensor:
    """(N,) scores of the trials by ``scoring``: ``cosine``, ``mean_subtraction`` (the cohort's
    mean embedding subtracted) or ``as_norm`` (adaptive s-norm over the ``top_k`` cohort)."""
    trials = evalset.trials
    cohort = cohort_matrix(table, evalset.cohort_rows, evalset, cohort_mode)
    return score_pairs(table, trials.enroll, trials.test, cohort, scoring, top_k)


def cohort_matrix(table: Tensor, rows: Tensor, evalset: EvalSet, mode: str) -> Tensor:
    """The cohort's embeddings: one per utterance (``utterances``), or one per speaker, the mean
    of its utterances (``speaker_means``: WeSpeaker's AS-norm cohort)."""
    if mode == "utterances":
        return table[rows]
    if mode != "speaker_means":
        raise ConfigError(f"cohort mode {mode!r}: utterances or speaker_means")
    speakers = [evalset.trials.utterances[r].speaker for r in rows.tolist()]
    index = {s: i for i, s in enumerate(dict.fromkeys(speakers))}
    groups = torch.tensor([index[s] for s in speakers], dtype=torch.long)
    sums = table.new_zeros(len(index), table.shape[1]).index_add_(0, groups, table[rows])
    return sums / torch.bincount(groups, minlength=len(index)).to(table.dtype)[:, None]


def score_pairs(
    table: Tensor, enroll: Tensor, test: Tensor, cohort: Tensor, scoring: str, top_k: int = 100
) -> Tensor:
    """(N,) scores of the pairs (rows ``enroll[i]``, ``test[i]`` of ``table``) by ``scoring``,
    with ``cohort`` (C,D) for the normalized scorings."""
    if scoring not in SCORINGS:
        raise ConfigError(f"unknown scoring {scoring!r}; choose from {list(SCORINGS)}")
    if scoring == "mean_subtraction":
        return cosine_scores(subtract_mean(table, cohort), enroll, test)
    raw = cosine_scores(table, enroll, test)
    if scoring == "as_norm":
        return as_norm(raw, enroll, test, table, cohort, top_k)
    return raw


def verification(
    table: Tensor, evalset: EvalSet, cfg: DictConfig, stored_threshold: float | None = None
) -> tuple[dict, dict[str, Tensor]]:
    """EER, minDCF (P_target 0.01/0.05), actual DCF and thresholds for each scoring.

    ``actual_dcf_p01`` is measured at ``stored_threshold`` (the one saved with the model) for
    cosine scoring when given, else at this evaluation's own EER threshold.

    Returns:
        ``(report, scores)``: figures per scoring, and the trial scores per scoring.
    """
    trials = evalset.trials
    scores: dict[str, Tensor] = {}
    for name in cfg.scorings:
        if name != "cosine" and len(evalset.cohort_rows) < 2:
            log.warning("scoring %s skipped: no cohort (cohort_per_speaker=0)", name)
            continue
        scores[name] = score_trials(
            table, evalset, name, cfg.top_k, cfg.get("cohort", "utterances")
        )
    report = {
        name: _verification_figures(
            s, trials.labels, cfg.far, stored_threshold if name == "cosine" else None
        )
        for name, s in scores.items()
    }
    for name in report:
        report[name]["far_target"] = cfg.far
    for name, figures in report.items():
        if figures["eer"] > 0.5:
            log.warning(
                "%s EER %.1f %% is worse than chance: are the trial labels flipped (1 must mean "
                "same speaker)?",
                name,
                100 * figures["eer"],
            )
    if "cosine" in report:
        report["cosine"]["actual_dcf_threshold_source"] = (
            "stored with the model" if stored_threshold is not None else "this evaluation's EER"
        )
    return report, scores


def _enrolment_split(
    labels: Tensor, enrol_per_speaker: int, unknown_speakers: int, seed: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(enrol positions, test positions, test labels with UNKNOWN, speaker index remap)."""
    num = int(labels.max()) + 1
    rng = np.random.default_rng(seed)
    counts = torch.bincount(labels, minlength=num)
    eligible = [s for s in range(num) if counts[s] > enrol_per_speaker]
    if len(eligible) < 2 + unknown_speakers:
        raise TooFewSpeakers(
            f"identification needs at least {2 + unknown_speakers} speakers with more than "
            f"{enrol_per_speaker} utterances; {len(eligible)} have"
        )
    unknown = set(rng.choice(eligible, unknown_speakers, replace=False).tolist())
    enrolled = [s for s in eligible if s not in unknown]
    remap = torch.full((num,), UNKNOWN, dtype=torch.long)
    remap[enrolled] = torch.arange(len(enrolled))
    enrol, test = [], []
    for s in eligible:
        positions = torch.nonzero(labels == s).flatten()[rng.permutation(int(counts[s]))]
        if s in unknown:
            test.append(positions)
        else:
            enrol.append(positions[:enrol_per_speaker])
            test.append(positions[enrol_per_speaker:])
    enrol_t, test_t = torch.cat(enrol), torch.cat(test)
    return enrol_t, test_t, remap[labels[test_t]], remap


def identification(
    embeddings: Tensor, labels: Tensor, cfg: DictConfig, threshold: float
) -> dict[str, float | int]:
    """Enrolment-based identification of the trial speakers.

    Each speaker enrols ``enrol_per_speaker`` random utterances; ``unknown_speakers`` speakers are
    not enrolled (open set). Closed-set figures use the enrolled speakers' other utterances;
    open-set figures reject a best centroid score not above ``threshold``.
    """
    enrol, test, test_labels, remap = _enrolment_split(
        labels, cfg.enrol_per_speaker, cfg.unknown_speakers, cfg.seed
    )
    num_enrolled = int((remap != UNKNOWN).sum())
    enrol_labels = remap[labels[enrol]]
    models = centroids(embeddings[enrol], enrol_labels, num_enrolled)
    centroid_scores = normalize(embeddings[test], dim=1) @ models.T
    known = test_labels != UNKNOWN
    ks = tuple(k for k in cfg.top_k if k <= num_enrolled)
    accuracy = topk_accuracy(centroid_scores[known], test_labels[known], ks)
    report: dict[str, float | int] = {f"top{k}": v for k, v in accuracy.items()}
    votes = knn_scores(
        embeddings[enrol],
        enrol_labels,
        embeddings[test][known],
        num_enrolled,
        cfg.knn_k,
        cfg.knn_weighting,
    )
    report[f"knn{cfg.knn_k}_{cfg.knn_weighting}"] = float(
        (votes.argmax(dim=1) == test_labels[known]).float().mean()
    )
    report["nearest_centroid"] = report["top1"]
    predictions, _ = reject_unknown(centroid_scores, threshold)
    report.update({f"open_set_{k}": v for k, v in open_set_rates(predictions, test_labels).items()})
    report.update(
        {
            "open_set_threshold": threshold,
            "enrolled_speakers": num_enrolled,
            "unknown_speakers": int(cfg.unknown_speakers),
            "enrol_per_speaker": int(cfg.enrol_per_speaker),
            "test_utterances": len(test),
        }
    )
    return report


def classifier_identification(
    logits: Tensor | None, labels: Tensor, ks: tuple[int, ...]
) -> dict[str, float | int | str]:
    """Closed-set identification by the trained classifier (the loss head's logits)."""
    if logits is None:
        return {"skipped": "the loss head has no classifier (it returns no logits)"}
    report: dict[str, float | int | str] = {
        f"top{k}": v
        for k, v in topk_accuracy(
            logits, labels, tuple(k for k in ks if k <= logits.shape[1])
        ).items()
    }
    report.update({"classes": logits.shape[1], "test_utterances": len(labels)})
    return report


def clustering(embeddings: Tensor, labels: Tensor, cfg: DictConfig) -> dict[str, dict]:
    """Each configured clustering method's scores against the true speakers."""
    x, truth = embeddings.numpy(), labels.numpy()
    if len(x) > cfg.max_utterances:
        keep = np.sort(np.random.default_rng(cfg.seed).choice(len(x), cfg.max_utterances, False))
        x, truth = x[keep], truth[keep]
    report = {}
    k_given = cfg.k
    if k_given is None and set(cfg.methods) - {"label_propagation"}:  # one k for every method
        k_given = choose_k(x, cfg.k_selection, cfg.max_k, cfg.neighbours)
    for method in cfg.methods:
        predicted, k = cluster(
            x, method, k_given, max_k=cfg.max_k, neighbours=cfg.neighbours, seed=cfg.seed
        )
        chosen_by = "given" if cfg.k is not None else cfg.k_selection
        report[method] = {
            **clustering_scores(truth, predicted),
            "k_chosen_by": "label propagation" if k is None else chosen_by,
        }
    report["true_speakers"] = len(np.unique(truth))
    report["utterances"] = len(x)
    return report


def embedding_map_points(x: np.ndarray, projection: str, seed: int) -> np.ndarray:
    if projection == "pca" or len(x) < 5:
        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if projection != "tsne":
        raise ConfigError(f"plots.map_projection must be 'tsne' or 'pca', got {projection!r}")
    perplexity = float(min(30, (len(x) - 1) / 3))
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
