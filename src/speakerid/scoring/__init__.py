"""Trial scoring from embeddings: cosine, cohort mean subtraction, AS-norm."""

from speakerid.scoring.cosine import cosine_scores
from speakerid.scoring.normalization import as_norm, cohort_statistics, subtract_mean

__all__ = ["as_norm", "cohort_statistics", "cosine_scores", "subtract_mean"]
