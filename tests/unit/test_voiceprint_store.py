"""The voiceprint store on its own: running means, the model's identity, names, concurrent
writers (no model: embeddings are random unit vectors)."""

import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.functional import normalize

from speakerid.errors import ConfigError
from speakerid.metrics.identification import centroids
from speakerid.voiceprints import VoiceprintStore, check_name, weights_sha256

META = {"model": "m.ckpt", "model_sha256": "a" * 64}


def _unit(n: int, seed: int) -> torch.Tensor:
    return normalize(torch.randn(n, 8, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_voiceprints_are_the_centroids_of_everything_enrolled(tmp_path: Path) -> None:
    store = VoiceprintStore(tmp_path / "voices")
    a1, a2, b = _unit(3, 0), _unit(2, 1), _unit(4, 2)
    store.add({"ann": a1, "bob": b}, META)
    prints = store.add({"ann": a2}, META)  # more files for a known speaker
    assert prints.names == ("ann", "bob") and prints.counts.tolist() == [5, 4]
    expected = centroids(torch.cat([a1, a2, b]), torch.tensor([0] * 5 + [1] * 4), 2)
    torch.testing.assert_close(prints.models(), expected)
    assert store.remove(["ann"]).names == ("bob",)
    assert store.read().names == ("bob",)
    with pytest.raises(ConfigError, match="made with another model"):
        store.add({"cy": _unit(1, 3)}, {**META, "model_sha256": "b" * 64})


def test_the_model_is_its_weights() -> None:
    weights = {"w": torch.ones(2, 3), "b": torch.zeros(3), "steps": torch.tensor(5)}
    same = {k: v.clone() for k, v in reversed(weights.items())}  # another order, same weights
    assert weights_sha256(weights) == weights_sha256(same)
    same["w"][0, 0] = 1.0001
    assert weights_sha256(weights) != weights_sha256(same)


@pytest.mark.parametrize("name", ["", "two words", "tab\there", "unknown", "no speech"])
def test_names_a_store_cannot_hold(name: str) -> None:
    with pytest.raises(ConfigError, match="speaker name"):
        check_name(name)


def _enrol_many(root: str, prefix: str) -> None:
    store = VoiceprintStore(root)
    for i in range(15):
        store.add({f"{prefix}{i}": _unit(1, i)}, META)


def test_concurrent_enrolments_lose_nobody(tmp_path: Path) -> None:
    root = tmp_path / "voices"
    VoiceprintStore(root).add({"first": _unit(1, 99)}, META)
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_enrol_many, args=(str(root), p)) for p in "xy"]
    for w in writers:
        w.start()
    for w in writers:
        w.join(60)
    assert [w.exitcode for w in writers] == [0, 0]
    names = VoiceprintStore(root).read().names
    assert len(names) == 31 and set(names) == {
        "first",
        *(f"{p}{i}" for p in "xy" for i in range(15)),
    }
    assert np.isfinite(VoiceprintStore(root).read().means).all()
