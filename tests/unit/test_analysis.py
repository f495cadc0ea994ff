"""Identification, similarity-matrix and clustering metrics against plain loops, scikit-learn
and hand-made cases; the clustering algorithms on separable data; the plots as PNG files."""

import itertools

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn import metrics as skm

from speakerid.analysis import plots
from speakerid.analysis.clustering import METHODS, cluster, eigengap_k, knee_k
from speakerid.analysis.similarity import similarity_matrix
from speakerid.metrics.clustering import (
    clustering_scores,
    misclassification_rate,
    purity,
)
from speakerid.metrics.identification import (
    UNKNOWN,
    centroids,
    knn_scores,
    open_set_rates,
    reject_unknown,
    topk_accuracy,
)


def blobs(speakers: int = 6, per_speaker: int = 12, dim: int = 16, spread: float = 0.15, seed=0):
    """Embeddings of well-separated speakers: a random direction each, plus small noise."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(speakers, dim, generator=gen), dim=1)
    labels = torch.arange(speakers).repeat_interleave(per_speaker)
    return centres[labels] + spread * torch.randn(len(labels), dim, generator=gen), labels


def test_topk_accuracy_matches_a_loop() -> None:
    torch.manual_seed(0)
    scores, labels = torch.randn(50, 8), torch.randint(0, 8, (50,))
    for k, value in topk_accuracy(scores, labels, (1, 3, 5)).items():
        hits = [
            int(label) in row.argsort(descending=True)[:k].tolist()
            for row, label in zip(scores, labels, strict=True)
        ]
        assert value == pytest.approx(sum(hits) / len(hits))


def test_knn_votes_by_hand() -> None:
    enrol = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.2, 0.8]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    test = torch.tensor([[0.8, 0.25]])  # nearest: both class-0 points, then class 1
    majority = knn_scores(enrol, labels, test, 2, k=3)
    assert majority.argmax().item() == 0 and majority[0, 0] > 1.99 and majority[0, 1] < 1.01
    distance = knn_scores(enrol, labels, test, 2, k=5, weighting="distance")
    chunked = knn_scores(enrol, labels, test.repeat(5, 1), 2, k=5, weighting="distance", chunk=2)
    torch.testing.assert_close(chunked, distance.repeat(5, 1))
    cos = torch.nn.functional.normalize(test) @ torch.nn.functional.normalize(enrol).T
    weights = 1 / (1 - cos[0])
    torch.testing.assert_close(distance[0], torch.stack([weights[:2].sum(), weights[2:].sum()]))
    with pytest.raises(ValueError, match="weighting"):
        knn_scores(enrol, labels, test, 2, weighting="vote")


def test_centroids_and_open_set_rejection() -> None:
    emb, labels = blobs(speakers=4, per_speaker=5)
    models = centroids(emb, labels, 4)
    torch.testing.assert_close(models.norm(dim=1), torch.ones(4))
    scores = torch.nn.functional.normalize(emb, dim=1) @ models.T
    predictions, _ = reject_unknown(scores, threshold=0.5)
    assert torch.equal(predictions, labels)  # separable: every utterance finds its speaker
    truth = labels.clone()
    truth[labels == 3] = UNKNOWN  # pretend speaker 3 was never enrolled
    rates = open_set_rates(predictions, truth)
    assert rates["false_alarm_rate"] == 1.0  # speaker 3's utterances were accepted as speaker 3
    assert rates["detection_identification_rate"] == 1.0
    assert rates["accuracy"] == pytest.approx(15 / 20)
    rejected, _ = reject_unknown(scores, threshold=2.0)
    assert (rejected == UNKNOWN).all()
    with pytest.raises(ValueError, match="at least one"):
        centroids(emb, labels, 5)


def test_similarity_matrix_matches_the_ge2e_formula() -> None:
    emb, labels = blobs(speakers=3, per_speaker=4, spread=0.8, seed=1)
    scores, matrix, correct = similarity_matrix(emb, labels)
    x = torch.nn.functional.normalize(emb, dim=1)
    for i in range(len(x)):
        for k in range(3):
            members = [j for j in range(len(x)) if labels[j] == k and j != i]  # own: exclusive
            centroid = x[members].mean(dim=0)
            expected = torch.nn.functional.cosine_similarity(x[i], centroid, dim=0)
            assert scores[i, k] == pytest.approx(float(expected), abs=1e-5)
    assert matrix[0, 1] == pytest.approx(float(scores[labels == 0, 1].mean()), abs=1e-6)
    assert torch.equal(correct, scores.argmax(dim=1) == labels)
    with pytest.raises(ValueError, match="at least 2"):
        similarity_matrix(emb[:5], labels[:5])  # speaker 1 has one utterance


def _brute_force_misclassification(truth: np.ndarray, clusters: np.ndarray) -> float:
    c_ids, t_ids = np.unique(clusters), np.unique(truth)
    best = 0
    pad = list(t_ids) + [None] * max(0, len(c_ids) - len(t_ids))
    for mapping in itertools.permutations(pad, len(c_ids)):
        assigned = dict(zip(c_ids, mapping, strict=True))
        best = max(best, sum(assigned[c] == t for c, t in zip(clusters, truth, strict=True)))
    return 1 - best / len(truth)


@pytest.mark.parametrize("seed", range(4))
def test_clustering_scores_against_loops_and_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth, clusters = rng.integers(0, 3, 30), rng.integers(0, 4, 30)
    majority = sum(np.bincount(truth[clusters == c]).max() for c in np.unique(clusters))
    assert purity(truth, clusters) == pytest.approx(majority / 30)
    assert misclassification_rate(truth, clusters) == pytest.approx(
        _brute_force_misclassification(truth, clusters)
    )
    scores = clustering_scores(truth, clusters)
    assert scores["nmi"] == pytest.approx(skm.normalized_mutual_info_score(truth, clusters))
    assert scores["ari"] == pytest.approx(skm.adjusted_rand_score(truth, clusters))
    assert scores["homogeneity"] == pytest.approx(skm.homogeneity_score(truth, clusters))
    assert scores["completeness"] == pytest.approx(skm.completeness_score(truth, clusters))
    mapped = np.array([np.bincount(truth[clusters == c]).argmax() for c in clusters])
    assert scores["f1"] == pytest.approx(skm.f1_score(truth, mapped, average="macro"))


def test_perfect_clustering_scores() -> None:
    truth = np.array([3, 3, 7, 7, 9])
    scores = clustering_scores(truth, np.array([1, 1, 0, 0, 2]))
    assert scores["misclassification_rate"] == 0.0
    assert all(scores[k] == pytest.approx(1.0) for k in ("purity", "f1", "nmi", "ari"))
    with pytest.raises(ValueError, match="equal-length"):
        clustering_scores(truth, np.array([1, 2]))


@pytest.mark.parametrize("method", METHODS)
def test_every_method_recovers_separable_speakers(method: str) -> None:
    emb, labels = blobs()
    predicted, k = cluster(emb.numpy(), method, k=None, seed=0)
    assert k in (6, None)
    scores = clustering_scores(labels.numpy(), predicted)
    assert scores["nmi"] == pytest.approx(1.0) and scores["misclassification_rate"] == 0.0


def test_number_of_clusters_selection() -> None:
    emb, _ = blobs(speakers=5, per_speaker=10)
    assert eigengap_k(emb.numpy(), max_k=20) == 5
    assert knee_k(emb.numpy(), max_k=20) == 5
    assert cluster(emb.numpy(), "kmeans", k=3)[1] == 3
    with pytest.raises(ValueError, match="unknown clustering method"):
        cluster(emb.numpy(), "dbscan")
    with pytest.raises(ValueError, match="k_selection"):
        cluster(emb.numpy(), "kmeans", k_selection="elbow")


def _assert_png(path) -> None:
    image = Image.open(path)
    assert image.format == "PNG" and image.size == plots.SIZE
    pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 5  # something was drawn on the white canvas


def test_plots_are_png_files_of_the_stated_size(tmp_path) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    scores = rng.normal(size=500) + 2 * labels
    _assert_png(plots.det_plot(scores, labels, tmp_path / "det.png", eer=0.16))
    _assert_png(plots.score_histogram(scores, labels, tmp_path / "hist.png", {"EER": 1.0}))
    _assert_png(plots.similarity_heatmap(rng.random((5, 5)), list("abcde"), tmp_path / "sim.png"))
    points, speakers = rng.normal(size=(40, 2)), rng.integers(0, 4, 40)
    _assert_png(plots.embedding_map(points, speakers, list("abcd"), tmp_path / "map.png", "map"))
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically
