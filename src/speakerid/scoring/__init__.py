"""Trial scoring from embeddings."""

from speakerid.scoring.cosine import cosine_scores

__all__ = ["cosine_scores"]
