"""Verification, identification and clustering metrics."""

from speakerid.metrics.verification import (
    EqualErrorRate,
    MinDCF,
    VerificationCurve,
    actual_dcf,
    compute_eer,
    compute_min_dcf,
    det_curve,
    threshold_at_far,
)

__all__ = [
    "EqualErrorRate",
    "MinDCF",
    "VerificationCurve",
    "actual_dcf",
    "compute_eer",
    "compute_min_dcf",
    "det_curve",
    "threshold_at_far",
]
