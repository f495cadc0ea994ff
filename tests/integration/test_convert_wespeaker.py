"""``speakerid-prepare pretrained=wespeaker``: a WeSpeaker model folder in its released layout
(``avg_model.pt`` with the training head, ``config.yaml``), written with WeSpeaker's ResNet34 and
random weights, becomes a speakerid checkpoint whose embeddings equal WeSpeaker's own front end +
model (``wespeaker/cli/speaker.py``: Kaldi fbank, Hamming window, int16 scale, mean subtracted)."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
import yaml
from tests.conftest import compose_config, tiny_overrides
from tests.integration.test_parity_redimnet import TFMEL_ARGS
from tests.references import wespeaker

from speakerid.errors import ConfigError
from speakerid.inference import embed_files, load_system
from speakerid.prepare import prepare

CONFIG = {
    "model": "ResNet34",
    "model_args": {
        "feat_dim": 80,
        "embed_dim": 256,
        "pooling_func": "TSTP",
        "two_emb_layer": False,
    },
    "dataset_args": {
        "resample_rate": 16000,
        "fbank_args": {"num_mel_bins": 80, "frame_shift": 10, "frame_length": 25, "dither": 1.0},
    },
    "projection_args": {"project_type": "arc_margin", "scale": 32.0, "num_class": 15},
}


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """The folder, and the reference model it holds (batch-norm statistics randomized)."""
    torch.manual_seed(0)
    model = wespeaker("models.resnet").ResNet34(feat_dim=80, embed_dim=256)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            module.running_mean.normal_(0.0, 0.2)
            module.running_var.uniform_(0.7, 1.4)
    folder = tmp_path_factory.mktemp("voxceleb_resnet34")
    state = {**model.state_dict(), "projection.weight": torch.randn(15, 256)}  # the ArcMargin head
    torch.save(state, folder / "avg_model.pt")
    (folder / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    return folder, model.eval()


def _theirs(model: torch.nn.Module, path: Path) -> torch.Tensor:
    """WeSpeaker's extraction: ``torchaudio.load(normalize=False)``-scale samples, Kaldi fbank
    with a Hamming window, minus the mean frame, through the model."""
    wav = torch.from_numpy(sf.read(str(path), dtype="int16")[0].astype(np.float32))[None]
    feats = torchaudio.compliance.kaldi.fbank(
        wav,
        num_mel_bins=80,
        frame_length=25,
        frame_shift=10,
        sample_frequency=16000,
        window_type="hamming",
    )
    feats = feats - feats.mean(dim=0)
    with torch.inference_mode():
        out = model(feats[None])
    return (out[-1] if isinstance(out, tuple) else out)[0]


def test_a_converted_wespeaker_resnet34_embeds_as_wespeaker_does(released, tmp_path: Path) -> None:
    folder, model = released
    output = tmp_path / "resnet34.ckpt"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    summary = prepare(
        compose_config(
            "prepare", ["pretrained=wespeaker", f"pretrained.path={folder}", f"output={output}"]
        )
    )
    assert summary["model"] == "ResNet34" and set(summary["sha256"]) == {
        "config.yaml",
        "avg_model.pt",
    }
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # read only
    rng = np.random.default_rng(2)
    wavs = []
    for seconds in (1.2, 3.1):
        path = tmp_path / f"{seconds}.wav"
        sf.write(str(path), 0.2 * rng.standard_normal(int(seconds * 16000)), 16000, "PCM_16")
        wavs.append(path)
    system, run_cfg, _ = load_system(output)
    for path, ours in zip(wavs, embed_files(system, wavs, run_cfg.data.sample_rate), strict=True):
        cosine = torch.nn.functional.cosine_similarity(ours, _theirs(model, path), dim=0)
        assert cosine >= 0.99999, (path.name, float(cosine))


def test_what_the_wespeaker_converter_cannot_take_is_one_line(released, tmp_path: Path) -> None:
    folder, _ = released
    other = tmp_path / "other"
    other.mkdir()
    (other / "avg_model.pt").write_bytes((folder / "avg_model.pt").read_bytes())
    base = ["pretrained=wespeaker", f"pretrained.path={other}", f"output={tmp_path}/x.ckpt"]
    for config, message in (
        ({**CONFIG, "model": "XVEC"}, r"WeSpeaker model 'XVEC' has no backbone here"),
        ({**CONFIG, "dataset_args": {"frontend": "s3prl"}}, r"frontend 's3prl': the converter"),
        ({**CONFIG, "model": "ECAPA_TDNN_GLOB_c512"}, r"pooling_func 'TSTP': only 'ASTP'"),
        (
            {**CONFIG, "model": "ECAPA_TDNN_GLOB_c512", "model_args": {"embed_dim": 192}},
            r"avg_model\.pt: does not fit EcapaWespeaker: unexpected keys conv1",  # ResNet34's
        ),
    ):
        (other / "config.yaml").write_text(yaml.safe_dump(config))
        with pytest.raises(ConfigError, match=message):
            prepare(compose_config("prepare", base))
    assert not (tmp_path / "x.ckpt").exists()


def test_a_converted_wespeaker_campplus_embeds_as_wespeaker_does(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = wespeaker("models.campplus").CAMPPlus(feat_dim=80, embed_dim=192)
    for module in model.modules():
        norm = isinstance(module, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d)
        if norm and module.track_running_stats:
            module.running_mean.normal_(0.0, 0.2)
            module.running_var.uniform_(0.7, 1.4)
    folder = tmp_path / "voxceleb_CAM++"
    folder.mkdir()
    torch.save(model.state_dict(), folder / "avg_model.pt")
    config = {**CONFIG, "model": "CAMPPlus", "model_args": {"feat_dim": 80, "embed_dim": 192}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    output = tmp_path / "campplus.ckpt"
    prepare(
        compose_config(
            "prepare", ["pretrained=wespeaker", f"pretrained.path={folder}", f"output={output}"]
        )
    )
    wav = tmp_path / "a.wav"
    sf.write(str(wav), 0.2 * np.random.default_rng(4).standard_normal(35000), 16000, "PCM_16")
    system, run_cfg, _ = load_system(output)
    ours = embed_files(system, [wav], run_cfg.data.sample_rate)[0]
    cosine = torch.nn.functional.cosine_similarity(ours, _theirs(model.eval(), wav), dim=0)
    assert cosine >= 0.99999, float(cosine)


REDIMNET2_CONFIG = {  # WeSpeaker's examples/voxceleb/v2/conf/redimnet2.yaml (dfa7419), B0
    "model": "ReDimNet2B0",
    "model_args": {"feat_dim": 72, "embed_dim": 192, "pooling_func": "ASTP"},
    "dataset_args": {
        "frontend": "tfmel",
        "resample_rate": 16000,
        "tfmel_args": TFMEL_ARGS,  # the recipe's (its sample_rate too)
    },
}


def test_a_converted_wespeaker_redimnet2_embeds_with_its_tfmel_front_end(tmp_path: Path) -> None:
    """The released layout: the tfmel front end attached to the model (its buffers saved in
    avg_model.pt) and the SphereFace2 head; WeSpeaker's extraction runs ``model.frontend`` on
    the int16-scale samples, then the model."""
    torch.manual_seed(5)
    model = wespeaker("models.redimnet2").ReDimNet2B0(feat_dim=72, embed_dim=192)
    args = REDIMNET2_CONFIG["dataset_args"]["tfmel_args"]
    model.add_module("frontend", wespeaker("frontend.tfmel").TFMelFrontend(**args))
    folder = tmp_path / "voxceleb_ReDimNet2B0"
    folder.mkdir()
    state = {**model.state_dict(), "projection.weight": torch.randn(7, 192)}
    torch.save(state, folder / "avg_model.pt")
    (folder / "config.yaml").write_text(yaml.safe_dump(REDIMNET2_CONFIG))
    output = tmp_path / "redimnet2.ckpt"
    base = ["pretrained=wespeaker", f"pretrained.path={folder}", f"output={output}"]
    assert prepare(compose_config("prepare", base))["model"] == "ReDimNet2B0"
    wav = tmp_path / "a.wav"
    sf.write(str(wav), 0.2 * np.random.default_rng(6).standard_normal(30000), 16000, "PCM_16")
    samples = torch.from_numpy(sf.read(str(wav), dtype="int16")[0].astype(np.float32))[None]
    model.eval()
    with torch.inference_mode():
        theirs = model(model.frontend(samples, torch.tensor([samples.shape[1]]))[0])[0]
    system, run_cfg, _ = load_system(output)
    ours = embed_files(system, [wav], run_cfg.data.sample_rate)[0]
    assert torch.nn.functional.cosine_similarity(ours, theirs, dim=0) >= 0.99999


def test_a_redimnet2_folder_with_a_front_end_we_do_not_compute_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    torch.save({}, folder / "avg_model.pt")
    base = ["pretrained=wespeaker", f"pretrained.path={folder}", f"output={tmp_path}/x.ckpt"]
    tfmel = REDIMNET2_CONFIG["dataset_args"]["tfmel_args"]
    for dataset_args, message in (
        ({"frontend": "tfmel", "tfmel_args": {**tfmel, "n_mels": 64}}, r"feat_dim 72 but the"),
        ({"frontend": "tfmel", "tfmel_args": {**tfmel, "top_db": 80}}, r"tfmel_args \['top_db'\]"),
        ({"frontend": "tfmel", "tfmel_args": {**tfmel, "sample_rate": 8000}}, r"takes 16 kHz"),
    ):
        (folder / "config.yaml").write_text(
            yaml.safe_dump({**REDIMNET2_CONFIG, "dataset_args": dataset_args})
        )
        with pytest.raises(ConfigError, match=message):
            prepare(compose_config("prepare", base))
    assert not (tmp_path / "x.ckpt").exists()


def test_a_converted_resnet34_verifies_and_starts_training_from_the_command_line(
    released, tiny_data_dir: Path, tmp_path: Path
) -> None:
    """``speakerid-verify`` on two built-in utterances, then ``speakerid-train init_from=`` with
    the converted backbone and its front end (2 steps), as a user types them."""
    import subprocess
    import sys

    from speakerid.pretrained.wespeaker import FBANK

    folder, _ = released
    ckpt = tmp_path / "resnet34.ckpt"
    prepare(
        compose_config(
            "prepare", ["pretrained=wespeaker", f"pretrained.path={folder}", f"output={ckpt}"]
        )
    )
    bin_dir, wavs = Path(sys.prefix) / "bin", sorted((tiny_data_dir / "synthetic").rglob("*.wav"))
    verify = subprocess.run(
        [bin_dir / "speakerid-verify", wavs[0], wavs[-1], f"ckpt_path={ckpt}", "threshold=0.5"],
        capture_output=True,
        text=True,
    )
    assert verify.returncode in (0, 1), verify.stderr[-2000:]  # same speaker / another
    assert "score" in (verify.stdout + verify.stderr).lower()
    run_dir = tmp_path / "run"
    train = subprocess.run(
        [
            bin_dir / "speakerid-train",
            f"init_from={ckpt}",
            "model/backbone=resnet34",
            "model.backbone.embed_dim=256",
            *FBANK,
            *tiny_overrides(tiny_data_dir, run_dir),
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=2",
            "test=false",
            "callbacks.rich_progress_bar=null",
            "trainer.enable_progress_bar=false",
            f"hydra.run.dir={run_dir}",
        ],
        capture_output=True,
        text=True,
    )
    assert train.returncode == 0, (train.stdout + train.stderr)[-3000:]
    assert f"backbone initialized from {ckpt}" in train.stdout + train.stderr
    assert list((run_dir / "checkpoints").glob("*.ckpt"))
