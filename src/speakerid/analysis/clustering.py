"""Clustering speaker embeddings: k-means, spectral, agglomerative, label propagation.

The algorithms are scikit-learn's and networkx's; this module prepares the cosine geometry they
work in and chooses the number of clusters when it is not given:

- ``eigengap``: the largest gap among the smallest eigenvalues of the normalized Laplacian of the
  pruned (k-NN) cosine affinity matrix (von Luxburg, "A Tutorial on Spectral Clustering", 2007,
  §8.3);
- ``knee``: the knee (largest discrete curvature) of the curve of average-linkage cosine merge
  distance against the number of clusters.
"""

import networkx as nx
import numpy as np
from scipy import sparse
from scipy.cluster.hierarchy import linkage
from scipy.sparse.linalg import eigsh
from sklearn.cluster import AgglomerativeClustering, KMeans, SpectralClustering

METHODS = (
    "kmeans",
    "spectral",
    "agglomerative_complete",
    "agglomerative_average",
    "label_propagation",
)


def _unit(embeddings: np.ndarray) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def affinity(embeddings: np.ndarray, neighbours: int) -> sparse.csr_matrix:
    """(N,N) sparse cosine affinity of the k-NN graph: each row keeps its ``neighbours`` highest
    similarities (clipped at 0), then the matrix is symmetrized. Pruning like this is what makes
    the eigengap meaningful for speaker embeddings, whose cosines are rarely near 0 (Park et al.,
    "Auto-Tuning Spectral Clustering for Speaker Diarization", 2019)."""
    x = _unit(embeddings)
    similarity = np.clip(x @ x.T, 0.0, 1.0)
    np.fill_diagonal(similarity, 0.0)  # no self-loops
    keep = min(neighbours, len(x) - 1)
    columns = np.argpartition(-similarity, keep - 1, axis=1)[:, :keep]
    rows = np.repeat(np.arange(len(x)), keep)
    pruned = sparse.csr_matrix(
        (similarity[rows, columns.ravel()], (rows, columns.ravel())), shape=similarity.shape
    )
    return ((pruned + pruned.T) / 2).tocsr()


def eigengap_k(embeddings: np.ndarray, max_k: int, neighbours: int = 10) -> int:
    """Number of clusters by the eigengap heuristic on the pruned affinity's normalized
    Laplacian ``L = I - D^-1/2 A D^-1/2`` (its smallest eigenvalues: 1 - the largest of
    ``D^-1/2 A D^-1/2``)."""
    a = affinity(embeddings, neighbours)
    degree = np.maximum(np.asarray(a.sum(axis=1)).ravel(), 1e-12)
    d = sparse.diags(1.0 / np.sqrt(degree))
    normalized = d @ a @ d
    count = min(max_k, len(embeddings) - 1) + 1
    if count + 1 >= len(embeddings):  # small: dense is exact and cheap
        top = np.linalg.eigvalsh(normalized.toarray())[::-1][:count]
    else:
        start = np.ones(len(embeddings))  # a fixed start vector: the same k on every call
        top = np.sort(eigsh(normalized, k=count, which="LA", v0=start, return_eigenvectors=False))
        top = top[::-1]
    return int(np.argmax(np.diff(1.0 - top))) + 1


def knee_k(embeddings: np.ndarray, max_k: int) -> int:
    """Number of clusters at the knee of the merge-distance curve (average linkage, cosine).

    With d(k) the distance of the merge that left k clusters, the knee is the k of largest
    discrete curvature d(k-1) - 2 d(k) + d(k+1): where merging stops joining near points.
    """
    n = len(embeddings)
    max_k = min(max_k, n - 2)  # d(max_k + 1) must exist
    if max_k < 2:
        return 1
    heights = linkage(_unit(embeddings), method="average", metric="cosine")[:, 2]
    k = np.arange(1, max_k + 2)
    d = heights[n - k - 1]  # merge m leaves n - 1 - m clusters
    curvature = d[:-2] - 2 * d[1:-1] + d[2:]  # at k = 2 .. max_k
    return int(k[1:-1][np.argmax(curvature)])


def choose_k(embeddings: np.ndarray, k_selection: str, max_k: int, neighbours: int = 10) -> int:
    """The number of clusters by ``eigengap`` or ``knee``."""
    if k_selection == "eigengap":
        return eigengap_k(embeddings, max_k, neighbours)
    if k_selection == "knee":
        return knee_k(embeddings, max_k)
    raise ValueError(f"k_selection must be 'eigengap' or 'knee', got {k_selection!r}")


def cluster(
    embeddings: np.ndarray,
    method: str,
    k: int | None = None,
    k_selection: str = "eigengap",
    max_k: int = 50,
    neighbours: int = 10,
    seed: int = 0,
) -> tuple[np.ndarray, int | None]:
    """Cluster embeddings with ``method`` (one of :data:`METHODS`).

    Args:
        embeddings: (N,D); compared by cosine.
        k: number of clusters; None chooses it by ``k_selection`` (``eigengap`` or ``knee``).
            Label propagation finds its own number and ignores k.
        max_k: largest k the selection considers.
        neighbours: the k-NN graph behind spectral clustering, the eigengap and label propagation
            links each point to this many nearest neighbours.
        seed: random state of k-means, spectral and label propagation.

    Returns:
        ``(labels, k)``: (N,) cluster index per embedding, and the k used (None for label
        propagation).
    """
    if method not in METHODS:
        raise ValueError(f"unknown clustering method {method!r}; choose from {', '.join(METHODS)}")
    if len(embeddings) < 2:
        raise ValueError("clustering needs at least 2 embeddings")
    x = _unit(embeddings)
    if method == "label_propagation":
        return _label_propagation(x, neighbours, seed), None
    if k is None:
        k = choose_k(x, k_selection, max_k, neighbours)
    if not 1 <= k <= len(x):
        raise ValueError(f"k={k} must be in [1, {len(x)}]")
    if method == "kmeans":  # on the unit sphere, Euclidean k-means follows cosine distance
        model = KMeans(n_clusters=k, n_init=10, random_state=seed)
        return model.fit_predict(x), k
    if method == "spectral":
        model = SpectralClustering(
            n_clusters=k, affinity="precomputed", assign_labels="cluster_qr", random_state=seed
        )
        return model.fit_predict(affinity(x, neighbours)), k
    linkage_name = method.removeprefix("agglomerative_")
    model = AgglomerativeClustering(n_clusters=k, metric="cosine", linkage=linkage_name)
    return model.fit_predict(x), k


def _label_propagation(x: np.ndarray, neighbours: int, seed: int) -> np.ndarray:
    """Asynchronous label propagation (Raghavan et al. 2007) on the cosine k-NN graph."""
    graph = nx.from_scipy_sparse_array(affinity(x, neighbours))  # edge attribute: weight
    labels = np.empty(len(x), dtype=np.int64)
    communities = nx.community.asyn_lpa_communities(graph, weight="weight", seed=seed)
    for label, members in enumerate(communities):
        labels[list(members)] = label
    return labels
