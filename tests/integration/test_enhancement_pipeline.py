"""Embedding enhancement end to end: a tiny encoder -> speakerid-embed (resumable, multi-crop,
also from a speechbrain folder) -> speakerid-enhance with every enhancement loss."""

from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import CONF, compose_config, tiny_overrides, tiny_train_config

from speakerid.data.embedding_store import EmbeddingStore, StoreWriter
from speakerid.data.trials import read_trials
from speakerid.embed import embed
from speakerid.enhance import enhance
from speakerid.errors import ConfigError
from speakerid.metrics import compute_eer
from speakerid.train import train

# every enhancement head; those that need batches of one speaker (DA) through their experiment
LOSSES = [
    f"experiment=enhance_{p.stem}"
    if p.stem.startswith("domain_adaptation")
    else f"enhance_loss={p.stem}"
    for p in sorted((CONF / "enhance_loss").glob("*.yaml"))
]


@pytest.fixture(scope="module")
def store(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("encoder")
    train(tiny_train_config(tiny_data_dir, out, "test=false"))
    cfg = _embed_config(out / "checkpoints" / "last.ckpt", out / "store")
    embed(cfg)
    return out / "store"


def _embed_config(ckpt: Path, output: Path, *extra: str):
    return compose_config(
        "embed",
        [
            f"ckpt_path={ckpt}",
            f"output={output}",
            f"paths.output_dir={output.parent}",
            "crops=2",
            "crop_seconds=0.5",
            "num_workers=0",
            "shard_size=7",
            *extra,
        ],
    )


def test_embed_writes_every_utterance_with_its_crops(store: Path, tiny_corpus) -> None:
    opened = EmbeddingStore(store)
    manifest = tiny_corpus.manifest()
    assert opened.ids == [u.utt_id for u in manifest]
    assert opened.array.shape == (len(manifest), 2, 16) and np.isfinite(opened.array).all()
    assert opened.meta["trials"].endswith("veri_test2.txt") and opened.meta["crop_seconds"] == 0.5
    assert not Path(f"{store}.partial").exists()


def test_an_interrupted_embedding_resumes_to_the_same_store(
    store: Path, tmp_path: Path, monkeypatch
) -> None:
    ckpt = Path(EmbeddingStore(store).meta["source"])
    original = StoreWriter.write_shard
    calls: list[int] = []

    def crash_on_third(self, shard, embeddings):
        calls.append(shard)
        if len(calls) == 3:
            raise KeyboardInterrupt
        original(self, shard, embeddings)

    monkeypatch.setattr(StoreWriter, "write_shard", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        embed(_embed_config(ckpt, tmp_path / "store"))
    monkeypatch.setattr(StoreWriter, "write_shard", original)
    done = Path(f"{tmp_path}/store.partial/progress.json").read_text()
    assert done.split() == ["[", "0,", "1", "]"]  # two shards kept, the third lost
    resumed = embed(_embed_config(ckpt, tmp_path / "store"))
    np.testing.assert_array_equal(resumed.array, EmbeddingStore(store).array)


def test_embed_from_a_speechbrain_folder(tiny_data_dir: Path, tmp_path: Path) -> None:
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    folder = tmp_path / "sb"
    folder.mkdir()
    settings = dict(
        channels=[16, 16, 16, 16, 48],
        kernel_sizes=[5, 3, 3, 3, 1],
        dilations=[1, 2, 3, 4, 1],
        attention_channels=8,
        lin_neurons=12,
    )
    torch.save(ECAPA_TDNN(24, **settings).state_dict(), folder / "embedding_model.ckpt")
    (folder / "hyperparams.yaml").write_text(
        "pretrained_path: speechbrain/spkrec-ecapa-voxceleb\n"
        "features: !new:speechbrain.lobes.features.Fbank {n_mels: 24}\n"
        "norm: !new:speechbrain.processing.features.InputNormalization {norm_type: sentence}\n"
        "model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN\n"
        "  input_size: 24\n"
        + "".join(f"  {k}: {v}\n" for k, v in settings.items())
        + "modules: {compute_features: !ref <features>, mean_var_norm: !ref <norm>,"
        " embedding_model: !ref <model>}\n"
        "pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer\n"
        "  loadables: {embedding_model: !ref <model>}\n"
        "  paths: {embedding_model: !ref <pretrained_path>/embedding_model.ckpt}\n"
    )
    before = sorted(p.name for p in folder.iterdir())
    overrides = [o for o in tiny_overrides(tiny_data_dir, tmp_path) if "num_workers" not in o]
    cfg = compose_config(
        "embed",
        [
            "data=synthetic",
            *overrides,
            "pretrained=speechbrain",
            f"pretrained.path={folder}",
            f"output={tmp_path}/store",
            "crops=0",
            "num_workers=0",
        ],
    )
    store = embed(cfg)
    assert store.array.shape[1:] == (1, 12) and store.meta["source"].startswith("speechbrain:")
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written into the model
    with pytest.raises(ConfigError, match="exactly one of"):
        embed(compose_config("embed", ["pretrained=speechbrain", "ckpt_path=x.ckpt"]))
    with pytest.raises(ConfigError, match="not a speechbrain model folder"):
        embed(compose_config("embed", ["pretrained=speechbrain", f"pretrained.path={tmp_path}"]))
    with pytest.raises(ConfigError, match="ResemblyzerConverter cannot be used in place: convert"):
        embed(compose_config("embed", ["pretrained=resemblyzer", "data=synthetic"]))


def _enhance_config(store: Path, out: Path, *extra: str):
    return compose_config(
        "enhance",
        [
            f"data.store={store}",
            "data.num_speakers=5",
            "data.val_speakers=2",
            "data.embed_dim=16",
            "data.batch_size=8",
            "trainer.max_epochs=2",
            "trainer.check_val_every_n_epoch=1",
            "callbacks.rich_progress_bar=null",
            "trainer.enable_progress_bar=false",
            f"paths.output_dir={out}",
            *extra,
        ],
    )


@pytest.mark.parametrize("choice", LOSSES)
def test_every_enhancement_loss_trains_and_reports(
    choice: str, store: Path, tmp_path: Path
) -> None:
    report = enhance(_enhance_config(store, tmp_path, choice))
    for side in ("original", "enhanced"):
        assert 0.0 <= report[side]["eer"] <= 1.0 and report[side]["min_dcf"] >= 0.0
    # the "original" figure is the plain cosine EER of the store's mean embeddings
    opened = EmbeddingStore(store)
    trials = read_trials(opened.meta["trials"])
    rows = {u: i for i, u in enumerate(opened.ids)}
    x = opened.mean()
    scores = [float(x[rows[t.enroll[:-4]]] @ x[rows[t.test[:-4]]]) for t in trials]
    eer = compute_eer(scores, [t.label for t in trials])[0]
    assert report["original"]["eer"] == pytest.approx(eer, abs=1e-6)
    enhanced = EmbeddingStore(report["enhanced_store"])
    assert enhanced.array.shape == (len(opened), 1, 16) and enhanced.ids == opened.ids
    assert {p.name for p in (tmp_path / "lists").iterdir()} == {
        "normal.txt",
        "test.txt",
        "triplet.txt",
        "distribution.txt",
    }


def test_enhancement_config_errors(store: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"set data\.embed_dim=16"):
        enhance(_enhance_config(store, tmp_path, "data.embed_dim=32"))
    with pytest.raises(ConfigError, match=r"set data\.num_speakers=5"):
        enhance(_enhance_config(store, tmp_path, "data.num_speakers=7"))
    with pytest.raises(ConfigError, match="not an embedding store"):
        enhance(_enhance_config(tmp_path, tmp_path))


def test_the_original_npy_layout_round_trips_through_speakerid_embed(
    store: Path, tiny_data_dir: Path, tmp_path: Path
) -> None:
    opened = EmbeddingStore(store)
    opened.to_npy_tree(tmp_path / "npy")
    overrides = [o for o in tiny_overrides(tiny_data_dir, tmp_path) if "num_workers" not in o]
    cfg = compose_config(
        "embed",
        ["data=synthetic", *overrides, f"import_npy={tmp_path}/npy", f"output={tmp_path}/back"],
    )
    back = embed(cfg)
    np.testing.assert_array_equal(back.array, opened.array)
    assert back.ids == opened.ids and back.meta["source"].startswith("npy:")


def test_embed_never_writes_into_its_corpus_or_the_users_folders(
    store: Path, tiny_corpus, tmp_path: Path
) -> None:
    """``output=<the corpus root>`` deleted the corpus it read; a folder of notes lost them."""
    ckpt = store.parent / "checkpoints" / "last.ckpt"
    corpus = Path(tiny_corpus.root)
    before = sorted(p.relative_to(corpus) for p in corpus.rglob("*"))
    for output in (corpus, corpus / "wav" / "store", corpus.parent):
        with pytest.raises(ConfigError, match=r"output=.*overlaps an input of this command"):
            embed(_embed_config(ckpt, output))
    assert sorted(p.relative_to(corpus) for p in corpus.rglob("*")) == before
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"notes: exists and is not an embedding store"):
        embed(_embed_config(ckpt, notes))
    with pytest.raises(ConfigError, match=r"npy_dir=.*notes: already holds files"):
        embed(_embed_config(ckpt, tmp_path / "new", f"npy_dir={notes}"))
    assert [p.name for p in notes.iterdir()] == ["todo.txt"] and not (tmp_path / "new").exists()


def test_embed_rerun_is_a_no_op_and_other_settings_need_overwrite(store: Path) -> None:
    ckpt = store.parent / "checkpoints" / "last.ckpt"
    stamp = (store / "embeddings.npy").stat().st_mtime_ns
    assert embed(_embed_config(ckpt, store)).root == store  # the fixture's own command
    assert (store / "embeddings.npy").stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match=r"other settings \(crop_seconds\).*overwrite=true"):
        embed(_embed_config(ckpt, store, "crop_seconds=0.25"))
    assert EmbeddingStore(store).meta["crop_seconds"] == 0.5
