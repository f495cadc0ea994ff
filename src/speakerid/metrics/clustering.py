"""Clustering scores of predicted clusters against true speakers.

Purity, F1 by majority matching and the misclassification rate are computed here from the
contingency table; NMI, ARI, homogeneity and completeness are scikit-learn's.
"""

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as skm


def contingency(truth: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """(K,S) counts: utterances of speaker s in cluster k (labels may be any integers)."""
    _, t = np.unique(truth, return_inverse=True)
    _, c = np.unique(clusters, return_inverse=True)
    table = np.zeros((c.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(table, (c, t), 1)
    return table


def purity(truth: np.ndarray, clusters: np.ndarray) -> float:
    """Fraction of utterances that belong to their cluster's majority speaker.

    Example:
        >>> purity(np.array([0, 0, 1, 1]), np.array([5, 5, 5, 7]))
        0.75
    """
    return float(contingency(truth, clusters).max(axis=1).sum() / len(truth))


def majority_f1(truth: np.ndarray, clusters: np.ndarray) -> float:
    """Macro F1 over speakers after labelling each cluster with its majority speaker."""
    table = contingency(truth, clusters)
    speakers, t = np.unique(truth, return_inverse=True)
    _, c = np.unique(clusters, return_inverse=True)
    predicted = table.argmax(axis=1)[c]
    return float(skm.f1_score(t, predicted, average="macro", labels=np.arange(len(speakers))))


def misclassification_rate(truth: np.ndarray, clusters: np.ndarray) -> float:
    """1 - accuracy under the best one-to-one mapping of clusters to speakers (Hungarian).

    Utterances in clusters left without a speaker (more clusters than speakers), or of speakers
    left without a cluster, count as errors.

    Example:
        >>> misclassification_rate(np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0]))
        0.0
    """
    table = contingency(truth, clusters)
    rows, cols = linear_sum_assignment(-table)
    return float(1.0 - table[rows, cols].sum() / len(truth))


def clustering_scores(truth: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    """All clustering scores; 1.0 is perfect for each except ``misclassification_rate`` (0.0)."""
    truth, clusters = np.asarray(truth), np.asarray(clusters)
    if truth.ndim != 1 or truth.shape != clusters.shape or truth.size == 0:
        raise ValueError(
            f"truth {truth.shape} and clusters {clusters.shape} must be equal-length 1-D arrays"
        )
    homogeneity, completeness, _ = skm.homogeneity_completeness_v_measure(truth, clusters)
    return {
        "num_clusters": len(np.unique(clusters)),
        "purity": purity(truth, clusters),
        "f1": majority_f1(truth, clusters),
        "nmi": float(skm.normalized_mutual_info_score(truth, clusters)),
        "ari": float(skm.adjusted_rand_score(truth, clusters)),
        "homogeneity": float(homogeneity),
        "completeness": float(completeness),
        "misclassification_rate": misclassification_rate(truth, clusters),
    }
