"""The pictures of an evaluation, as PNG files: DET curve, score histogram, similarity heat map,
embedding map. Each function draws one figure of ``SIZE`` pixels and writes it atomically.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import norm

from speakerid.metrics import det_curve
from speakerid.utils.io import atomic_path

DPI = 100
SIZE = (800, 600)  # pixels of every figure
_DET_TICKS = np.array([0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4])


def _figure() -> tuple[plt.Figure, plt.Axes]:
    return plt.subplots(figsize=(SIZE[0] / DPI, SIZE[1] / DPI), dpi=DPI)


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)
    return path


def det_plot(
    scores: np.ndarray, labels: np.ndarray, path: str | Path, eer: float | None = None
) -> Path:
    """Detection error trade-off curve on normal-deviate axes, with the EER point marked."""
    p_miss, p_fa = det_curve(scores, labels)
    lo, hi = 1e-4, 0.5
    fig, ax = _figure()
    ax.plot(norm.ppf(np.clip(p_fa, lo, hi)), norm.ppf(np.clip(p_miss, lo, hi)), lw=1.5)
    if eer is not None:
        point = norm.ppf(np.clip(eer, lo, hi))
        ax.plot([point], [point], "o", label=f"EER {eer * 100:.2f} %")
        ax.legend(loc="upper right")
    ticks = norm.ppf(_DET_TICKS)
    labels_pct = [f"{t * 100:g}" for t in _DET_TICKS]
    ax.set_xticks(ticks, labels_pct)
    ax.set_yticks(ticks, labels_pct)
    ax.set_xlim(norm.ppf(lo), norm.ppf(hi))
    ax.set_ylim(norm.ppf(lo), norm.ppf(hi))
    ax.plot([norm.ppf(lo), norm.ppf(hi)], [norm.ppf(lo), norm.ppf(hi)], ":", color="grey", lw=0.8)
    ax.set_xlabel("false-accept rate (%)")
    ax.set_ylabel("miss rate (%)")
    ax.set_title("DET curve")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def score_histogram(
    scores: np.ndarray,
    labels: np.ndarray,
    path: str | Path,
    thresholds: Mapping[str, float] | None = None,
) -> Path:
    """Densities of same-speaker and different-speaker scores, with thresholds as lines."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    bins = np.linspace(scores.min(), scores.max(), 81)
    fig, ax = _figure()
    ax.hist(scores[labels != 1], bins=bins, density=True, alpha=0.6, label="different speaker")
    ax.hist(scores[labels == 1], bins=bins, density=True, alpha=0.6, label="same speaker")
    for name, value in (thresholds or {}).items():
        ax.axvline(value, ls="--", lw=1, color="black")
        ax.text(value, ax.get_ylim()[1] * 0.95, f" {name}", rotation=90, va="top", fontsize=8)
    ax.set_xlabel("score")
    ax.set_ylabel("density")
    ax.set_title("Score distributions")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def similarity_heatmap(
    matrix: np.ndarray, speakers: Sequence[str], path: str | Path, accuracy: float | None = None
) -> Path:
    """Speaker × centroid mean similarity (the GE2E similarity matrix) as a heat map."""
    fig, ax = _figure()
    image = ax.imshow(matrix, cmap="viridis", vmin=min(0.0, float(np.min(matrix))), vmax=1.0)
    fig.colorbar(image, ax=ax, label="mean cosine similarity")
    if len(speakers) <= 40:
        ax.set_xticks(range(len(speakers)), speakers, rotation=90, fontsize=6)
        ax.set_yticks(range(len(speakers)), speakers, fontsize=6)
    ax.set_xlabel("centroid")
    ax.set_ylabel("utterances of")
    title = "Similarity matrix"
    ax.set_title(f"{title} (accuracy {accuracy * 100:.1f} %)" if accuracy is not None else title)
    fig.tight_layout()
    return _save(fig, path)


def embedding_map(
    points: np.ndarray, labels: np.ndarray, speakers: Sequence[str], path: str | Path, title: str
) -> Path:
    """2-D points coloured by speaker (the projection is made by the caller)."""
    fig, ax = _figure()
    cmap = plt.get_cmap("tab20")
    for index, name in enumerate(speakers):
        chosen = labels == index
        ax.scatter(*points[chosen].T, s=10, color=cmap(index % 20), label=name)
    if len(speakers) <= 20:
        ax.legend(fontsize=6, markerscale=1.5, loc="best", ncol=2)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return _save(fig, path)
