"""Verification, identification and clustering metrics."""

from speakerid.metrics.verification import EqualErrorRate, MinDCF, compute_eer, compute_min_dcf

__all__ = ["EqualErrorRate", "MinDCF", "compute_eer", "compute_min_dcf"]
