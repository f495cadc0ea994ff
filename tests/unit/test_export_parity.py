"""The export's parity check is relative to the embedding's norm: the default model's rounding
(1.23e-4 absolute on embeddings of norm ~25) passes, a wrong export does not."""

import numpy as np

from speakerid.export import parity_gap


def test_rounding_on_large_embeddings_passes_and_a_wrong_export_fails() -> None:
    rng = np.random.default_rng(0)
    eager = rng.standard_normal((3, 192)).astype(np.float32)
    eager *= 25 / np.linalg.norm(eager, axis=1, keepdims=True)
    rounded = eager + rng.uniform(-1.23e-4, 1.23e-4, eager.shape).astype(np.float32)
    absolute, relative = parity_gap(rounded, eager)
    assert 1e-4 < absolute <= 1.24e-4  # what failed the absolute check
    plain = max(
        np.sqrt(sum((float(a) - float(b)) ** 2 for a, b in zip(x, y, strict=True)))
        / np.sqrt(sum(float(b) ** 2 for b in y))
        for x, y in zip(rounded, eager, strict=True)
    )
    assert np.isclose(relative, plain, rtol=1e-6) and relative < 1e-4  # tolerance: 1e-3
    assert parity_gap(eager[::-1].copy(), eager)[1] > 0.5  # rows swapped: caught
    assert parity_gap(eager * 1.01, eager)[1] > 1e-3  # a 1 % scale error: caught
