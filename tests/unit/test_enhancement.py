"""Enhancement parts: LinearNet widths, target heads against their formulas (DA against a direct
MMD² computation), type B/C targets, the four list formats, the embedding store round trips."""

import itertools
import json
import math

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from tests.conftest import CONF, compose_config

from speakerid.data import enhancement_lists as lists
from speakerid.data.embedding_datamodule import speaker_targets
from speakerid.data.embedding_store import EmbeddingStore, StoreWriter
from speakerid.data.manifest import Utterance
from speakerid.errors import ConfigError, ListFileError
from speakerid.losses import CosineTarget, DomainAdaptation, Mae, Mse, TripletCosine, WeightedSum

ORIGINAL_WIDTHS = {  # the enhancement project's nets for 512-d embeddings
    "linear_net": [512, 1024, 2048, 2048, 1024, 512],
    "linear_net_v2": [512, 1024, 2048, 2048, 1024, 512],
    "linear_net_v3": [512, 1024, 1024, 512],
    "linear_net_v4": [512, 1024, 1024, 2048, 2048, 1024, 1024, 512],
}


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "model/enhancer").glob("*.yaml")))
def test_linear_nets_have_the_original_widths(name: str) -> None:
    cfg = compose_config("enhance", [f"model/enhancer={name}", "data.embed_dim=512"])
    net = instantiate(cfg.model.enhancer)
    linears = [m for m in net.layers if isinstance(m, torch.nn.Linear)]
    assert [linears[0].in_features] + [m.out_features for m in linears] == ORIGINAL_WIDTHS[name]
    dropouts = sum(isinstance(m, torch.nn.Dropout) for m in net.layers)
    assert dropouts == {"linear_net": 3, "linear_net_v3": 1}.get(name, 0)
    assert net(torch.randn(4, 512)).shape == (4, net.embed_dim) and net.embed_dim == 512


def test_last_activation_can_be_left_out() -> None:
    from speakerid.enhancers import LinearNet

    torch.manual_seed(0)
    relu_out = LinearNet(8, widths=[2, 1], dropout_after=[])(torch.randn(64, 8))
    free_out = LinearNet(8, widths=[2, 1], dropout_after=[], last_activation=False)(
        torch.randn(64, 8)
    )
    assert (relu_out >= 0).all() and (free_out < 0).any()
    with pytest.raises(ValueError, match="activation"):
        LinearNet(8, activation="tanh")


def _with_targets(head, targets):
    head.set_targets(targets)
    return head


def test_target_heads_match_their_formulas() -> None:
    torch.manual_seed(1)
    targets, x = torch.randn(4, 6), torch.randn(10, 6)
    labels = torch.stack(
        [torch.randint(0, 4, (10,)), torch.zeros(10).long(), torch.zeros(10).long()], 1
    )
    labels[:, 2] = (labels[:, 0] + 1) % 4
    m = targets[labels[:, 0]]
    assert _with_targets(Mse(), targets)(x, labels).loss == pytest.approx(
        float(((x - m) ** 2).mean())
    )
    assert _with_targets(Mae(), targets)(x, labels[:, 0]).loss == pytest.approx(
        float((x - m).abs().mean())
    )
    cos = torch.nn.functional.cosine_similarity(x, m, dim=1)
    assert _with_targets(CosineTarget(), targets)(x, labels).loss == pytest.approx(
        float(1 - cos.mean()), abs=1e-6
    )
    other = torch.nn.functional.cosine_similarity(x, targets[labels[:, 2]], dim=1)
    triplet = _with_targets(TripletCosine(), targets)(x, labels).loss
    assert triplet == pytest.approx(float((1 - cos + other).mean()), abs=1e-6)
    hinge = _with_targets(TripletCosine(margin=0.2), targets)(x, labels).loss
    assert hinge == pytest.approx(float(torch.relu(other - cos + 0.2).mean()), abs=1e-6)
    combined = _with_targets(WeightedSum({"a": Mse(), "b": Mae()}, {"a": 2.0, "b": 0.5}), targets)
    assert combined(x, labels).loss == pytest.approx(
        float(2 * ((x - m) ** 2).mean() + 0.5 * (x - m).abs().mean()), abs=1e-6
    )
    with pytest.raises(RuntimeError, match="set_targets"):
        Mse()(x, labels)
    with pytest.raises(ValueError, match="unknown heads"):
        WeightedSum({"a": Mse()}, {"b": 1.0})


def _mmd2_direct(x: list[float], y: list[float], sigma: float) -> float:
    def k(a: float, b: float) -> float:
        return math.exp(-((a - b) ** 2) / (2 * sigma**2))

    kxx = sum(k(a, b) for a in x for b in x) / len(x) ** 2
    kyy = sum(k(a, b) for a in y for b in y) / len(y) ** 2
    kxy = sum(k(a, b) for a in x for b in y) / (len(x) * len(y))
    return kxx + kyy - 2 * kxy


@pytest.mark.parametrize("sigma", [1.0, 0.1])
def test_domain_adaptation_is_mmd2_of_same_and_cross_session_distances(sigma: float) -> None:
    torch.manual_seed(2)
    x = torch.randn(7, 5)
    speaker = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    session = torch.tensor([0, 0, 1, 1, 2, 3, 3])
    labels = torch.stack([speaker, session, torch.zeros(7).long()], dim=1)
    unit = torch.nn.functional.normalize(x, dim=1)
    same, cross = [], []
    for i, j in itertools.combinations(range(7), 2):
        if speaker[i] == speaker[j]:
            d = float((unit[i] - unit[j]).norm())
            (same if session[i] == session[j] else cross).append(d)
    got = DomainAdaptation(sigma=sigma)(x, labels).loss
    assert float(got) == pytest.approx(_mmd2_direct(same, cross, sigma), abs=1e-6)
    one_session = labels.clone()
    one_session[:, 1] = 0
    assert float(DomainAdaptation()(x, one_session).loss) == 0.0  # no cross-session pairs
    with pytest.raises(ValueError, match=r"\(B,3\) labels"):
        DomainAdaptation()(x, speaker)


def test_speaker_targets_b_and_c_against_loops() -> None:
    rng = np.random.default_rng(0)
    crops, labels = rng.normal(size=(9, 3, 4)), np.array([0, 1, 2, 0, 1, 2, 0, 0, 1])
    b, c = (speaker_targets(crops, labels, 3, kind) for kind in ("B", "C"))
    for s in range(3):
        means = crops[labels == s].mean(axis=1)
        unit = means / np.linalg.norm(means, axis=1, keepdims=True)
        np.testing.assert_allclose(b[s], unit.mean(axis=0), atol=1e-6)
        total = means.mean(axis=0)
        np.testing.assert_allclose(c[s], total / np.linalg.norm(total), atol=1e-6)
    with pytest.raises(ConfigError, match="target_type"):
        speaker_targets(crops, labels, 3, "A")


def _rows(speakers: int = 3, per_speaker: int = 6, sessions: int = 2) -> list[Utterance]:
    return [
        Utterance(
            f"id{s}/s{u % sessions}/{u:05d}",
            f"wav/id{s}/s{u % sessions}/{u:05d}.flac",
            f"id{s}",
            f"s{u % sessions}",
            16000,
            16000,
        )
        for s in range(speakers)
        for u in range(per_speaker)
    ]


def test_list_generators_follow_the_formats(tmp_path) -> None:
    rows = _rows()
    speaker_of = {lists.list_path(r): r.speaker for r in rows}
    session_of = {lists.list_path(r): r.session for r in rows}
    test = lists.generate("test", rows, seed=0)
    for row in rows:  # 4 same + 4 different partners per file
        mine = [line for line in test if line[1] == lists.list_path(row)]
        assert sorted(label for label, _, _ in mine) == [0] * 4 + [1] * 4
        for label, a, b in mine:
            assert (speaker_of[a] == speaker_of[b]) == bool(label) and a != b
    for spk, path, other in lists.generate("triplet", rows, seed=0):
        assert speaker_of[path] == spk != other
    for spk, a, b, flag in lists.generate("distribution", rows, seed=0):
        assert speaker_of[a] == speaker_of[b] == spk and a != b
        assert (session_of[a] == session_of[b]) == bool(flag)
    assert lists.generate("normal", rows, 0)[0] == ("id0", "id0/s0/00000.flac")
    assert lists.generate("test", rows, seed=0) == test  # seeded
    for kind in lists.KINDS:
        lines = lists.generate(kind, rows, seed=1)
        lists.write(tmp_path / f"{kind}.txt", lines)
        assert lists.read(tmp_path / f"{kind}.txt", kind) == lines


def test_malformed_list_lines_name_the_line(tmp_path) -> None:
    bad = tmp_path / "dist.txt"
    bad.write_text("id0 a.wav b.wav 1\nid0 a.wav b.wav yes\n")
    with pytest.raises(ListFileError, match=r"dist\.txt:2: not a distribution line"):
        lists.read(bad, "distribution")
    with pytest.raises(ListFileError, match="not found"):
        lists.read(tmp_path / "none.txt", "normal")


def _index(n: int) -> list[tuple[str, str, str]]:
    return [(f"id{i % 3}/s{i % 2}/{i:05d}", f"id{i % 3}", f"s{i % 2}") for i in range(n)]


def test_store_round_trip_and_resume(tmp_path) -> None:
    data = np.random.default_rng(0).normal(size=(10, 2, 4)).astype(np.float32)
    writer = StoreWriter(tmp_path / "store", _index(10), 2, 4, {"source": "x"}, shard_size=4)
    assert writer.pending() == [0, 1, 2]
    writer.write_shard(1, data[4:8])
    del writer  # interrupted: shard 1 is kept
    assert not (tmp_path / "store").exists()
    with pytest.raises(ConfigError, match="rerun to resume"):
        EmbeddingStore(tmp_path / "store")
    resumed = StoreWriter(tmp_path / "store", _index(10), 2, 4, {"source": "x"}, shard_size=4)
    assert resumed.pending() == [0, 2]
    resumed.write_shard(0, data[:4])
    resumed.write_shard(2, data[8:])
    store = resumed.finish()
    np.testing.assert_array_equal(store.array, data)  # exact
    assert store.index == _index(10) and store.meta["source"] == "x" and store.crops == 2
    mean = data.mean(axis=1)
    np.testing.assert_allclose(store.mean([3]), mean[3:4] / np.linalg.norm(mean[3]), rtol=1e-6)
    assert not (tmp_path / "store.partial").exists()
    # a leftover partial store from other settings is refused
    StoreWriter(tmp_path / "other", _index(10), 2, 4, {"source": "x"}, shard_size=4)
    with pytest.raises(ConfigError, match="other settings"):
        StoreWriter(tmp_path / "other", _index(10), 2, 4, {"source": "y"}, shard_size=4)


def test_store_npy_tree_round_trip(tmp_path) -> None:
    data = np.random.default_rng(1).normal(size=(6, 3, 4)).astype(np.float32)
    writer = StoreWriter(tmp_path / "store", _index(6), 3, 4, {}, shard_size=6)
    writer.write_shard(0, data)
    store = writer.finish()
    assert store.to_npy_tree(tmp_path / "npy") == 6
    assert np.load(tmp_path / "npy" / "id0/s0/00000.npy").shape == (3, 4)
    rows = [Utterance(u, f"{u}.wav", s, e, 0, 0) for u, s, e in _index(6)]
    back = EmbeddingStore.from_npy_tree(tmp_path / "npy", tmp_path / "back", rows)
    np.testing.assert_array_equal(back.array, data)
    (tmp_path / "store" / "index.tsv").write_text("utt_id\tspeaker\tsession\nx\ty\n")
    with pytest.raises(ConfigError, match=r"index\.tsv:2: expected 3"):
        EmbeddingStore(tmp_path / "store")
    assert json.loads((tmp_path / "back" / "meta.json").read_text())["crops"] == 3
