"""Resemblyzer's GE2E encoder as a speakerid checkpoint: the weights come from the package (or
its wheel, never the internet), the embeddings equal Resemblyzer's own, every tool takes the
checkpoint, and fine-tuning it from ``init_from=`` lowers the GE2E loss."""

import importlib.util
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tests.conftest import compose_config, tiny_overrides

from speakerid.inference import embed_files, load_checkpoint, load_system
from speakerid.pretrained import convert_resemblyzer, resemblyzer_weights
from speakerid.train import train
from speakerid.utils.io import file_sha256
from speakerid.verify import verify

with warnings.catch_warnings():  # resemblyzer imports scipy.ndimage.morphology (deprecated)
    warnings.simplefilter("ignore")
    from resemblyzer import VoiceEncoder
    from resemblyzer.audio import normalize_volume


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pretrained") / "resemblyzer.ckpt"
    convert_resemblyzer(resemblyzer_weights(out.parent / "downloads"), out)
    return out


def test_the_checkpoint_records_its_source_and_loads_safely(converted: Path) -> None:
    checkpoint = load_checkpoint(converted)  # weights_only=True
    source = checkpoint["speakerid"]["source"]
    assert source["package"] == "resemblyzer==0.1.4"
    assert source["sha256"] == file_sha256(resemblyzer_weights(converted.parent / "downloads"))
    system, _, _ = load_system(converted)
    assert type(system.backbone).__name__ == "Ge2eLstm"
    assert sum(p.numel() for p in system.backbone.parameters()) == 1_423_616  # 3 x 256 LSTM
    assert float(system.loss.w) == pytest.approx(70.89, abs=0.01)  # its trained GE2E w, b


@pytest.mark.parametrize("seconds", [1.0, 1.6, 2.45, 3.37, 6.1])  # one window, edges, several
def test_embeddings_equal_resemblyzers_own(
    converted: Path, tiny_corpus, tmp_path: Path, seconds: float
) -> None:
    system, _, _ = load_system(converted)
    reference = VoiceEncoder("cpu", verbose=False)
    manifest = tiny_corpus.manifest()
    wav = np.concatenate([sf.read(manifest.audio_path(u), dtype="float32")[0] for u in manifest])
    wav = 0.3 * wav[: int(seconds * 16000)]  # quieter than -30 dBFS or not: both normalize
    path = tmp_path / "x.wav"
    sf.write(path, wav, 16000, subtype="FLOAT")
    ours = embed_files(system, [path], 16000)[0].numpy()
    theirs = reference.embed_utterance(normalize_volume(wav, -30, increase_only=True))
    assert float(ours @ theirs) > 0.9999


def test_the_wheel_is_the_only_source_when_the_package_is_absent(
    converted: Path, tmp_path: Path, monkeypatch
) -> None:
    installed = resemblyzer_weights(tmp_path / "unused")
    wheel = tmp_path / "downloads" / "Resemblyzer-0.1.4-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as archive:  # what `pip download` leaves there
        archive.write(installed, "resemblyzer/pretrained.pt")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    extracted = resemblyzer_weights(tmp_path / "downloads")
    assert extracted.parent == tmp_path / "downloads"
    assert file_sha256(extracted) == file_sha256(installed)


def test_verify_takes_the_converted_checkpoint(converted: Path, tiny_corpus) -> None:
    manifest = tiny_corpus.manifest()
    a = manifest.audio_path(manifest[0])
    other = next(u for u in manifest if u.speaker != manifest[0].speaker)
    score, _, same, _ = verify([str(a), str(a), f"ckpt_path={converted}", "threshold=0.7"])
    assert score == pytest.approx(1.0, abs=1e-5) and same
    score, _, _, _ = verify(
        [str(a), str(manifest.audio_path(other)), f"ckpt_path={converted}", "threshold=0.7"]
    )
    assert score < 1.0 - 1e-3


def test_fine_tuning_from_the_converted_weights_lowers_the_ge2e_loss(
    converted: Path, tiny_data_dir: Path, tmp_path: Path
) -> None:
    cfg = compose_config(
        "train",
        [
            *tiny_overrides(tiny_data_dir, tmp_path),
            "experiment=ge2e_resemblyzer",
            f"init_from={converted}",
            "data.num_speakers=null",
            "data.sampler.speakers=4",
            "data.sampler.utterances=2",
            "data.crop_seconds=1.0",
            "optimizer.lr=1e-3",
            "trainer.max_epochs=6",
            "test=false",
            "logger=csv",
            "callbacks.rich_progress_bar=null",
            "trainer.enable_progress_bar=false",
        ],
    )
    train(cfg)
    rows = [
        line.split(",")
        for line in next((tmp_path / "csv").rglob("metrics.csv")).read_text().splitlines()
    ]
    column = rows[0].index("train/loss")  # logged every 10 steps
    losses = [float(r[column]) for r in rows[1:] if len(r) > column and r[column]]
    assert len(losses) >= 3 and np.isfinite(losses).all()
    assert losses[-1] < losses[0]
