"""The Python API (``speakerid.load``): docs/api.md's examples run here; the API embeds as the
file and multi-crop paths of the tools do; the CLIs decide through it; bad input is refused."""

import doctest
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hydra.utils import instantiate
from torch.nn.functional import normalize

import speakerid
from speakerid.checkpoints import compose_run_config, write_converted
from speakerid.data.datasets import MultiCropDataset, collate
from speakerid.errors import AudioError, ConfigError
from speakerid.identify import identify
from speakerid.inference import embed_files, save_thresholds
from speakerid.verify import verify

DOCS = Path(__file__).resolve().parents[2] / "docs"
TINY = [
    "data.num_speakers=5",
    "model.backbone.channels=16",
    "model.backbone.embed_dim=16",
    "model.backbone.attention_channels=8",
    "model.backbone.se_channels=8",
]
STORED = {"scoring": "cosine", "eer": 0.5, "far": 0.7, "far_target": 0.01, "trials": "fixture"}


def _voice(seconds: float, pitch: float, seed: int) -> np.ndarray:
    """A harmonic buzz in syllables, with noise: a stand-in for a voice that passes the tools'
    speech gate (the API needs no real speech)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    wav = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 6))
    syllables = 0.05 + (np.sin(2 * np.pi * 4 * t) > 0)
    return (0.1 * wav * syllables + 0.001 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A tiny random ECAPA checkpoint with stored thresholds, and three wav files."""
    folder = tmp_path_factory.mktemp("api")
    torch.manual_seed(0)
    config = compose_run_config(TINY, folder)
    checkpoint = folder / "tiny.ckpt"
    write_converted(checkpoint, config, instantiate(config.system).state_dict(), {}, [])
    save_thresholds(checkpoint, STORED)
    files = {"checkpoint": str(checkpoint)}
    for name, seconds, pitch, seed in (("alice_1", 1.5, 120, 1), ("alice_2", 1.2, 125, 2)):
        files[name] = str(folder / f"{name}.wav")
        sf.write(files[name], _voice(seconds, pitch, seed), 16000)
    files["bob_1"] = str(folder / "bob_1.wav")
    sf.write(files["bob_1"], _voice(1.0, 210, 3), 16000)
    return files


def test_the_api_page_examples_run(model_files: dict[str, str]) -> None:
    failures, tried = doctest.testfile(
        str(DOCS / "api.md"),
        module_relative=False,
        globs={**model_files, "torch": torch},
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert tried > 15 and failures == 0


def test_import_speakerid_stays_light() -> None:
    code = "import sys, speakerid; print(sorted({'torch', 'lightning'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_embeddings_are_the_tools_embeddings(model_files: dict[str, str]) -> None:
    """Whole files as embed_files (verify, identify), crops as the evaluation's MultiCropDataset
    (a second implementation: crops read from the file and batched by collate)."""
    model = speakerid.load(model_files["checkpoint"])
    paths = [model_files["alice_1"], model_files["bob_1"]]
    expected = embed_files(model.system, paths, 16000)
    assert torch.allclose(model.embed(paths), expected, atol=1e-6)
    lengths = [sf.info(p).frames for p in paths]
    crops = MultiCropDataset(paths, lengths, 16000, 8000, 3)
    batch = collate([crops[i] for i in range(len(crops))])
    with torch.inference_mode():
        raw = model.system(batch.wav, batch.lengths).view(2, 3, -1).mean(1)
    got = model.embed(paths, crops=3, crop_seconds=0.5)
    assert torch.allclose(got, normalize(raw, dim=1), atol=1e-5)
    short = model.embed(model_files["bob_1"], crops=2, crop_seconds=2.0)  # repeated to 2 s
    wav = sf.read(model_files["bob_1"], dtype="float32")[0]
    assert torch.allclose(short, model.embed(np.resize(wav, 32000)), atol=1e-5)


def test_the_cli_decides_through_the_api(model_files: dict[str, str], capsys) -> None:
    a, b, ckpt = model_files["alice_1"], model_files["bob_1"], model_files["checkpoint"]
    decision = verify([a, b, f"ckpt_path={ckpt}", "threshold=far@0.01"])
    assert decision == speakerid.load(ckpt, threshold=0.7).verify(a, b)
    assert "operating point: far@0.01 = 0.7000 (stored with the model, from fixture" in (
        capsys.readouterr().err
    )
    enrol = Path(ckpt).parent / "enrol"
    for name in ("alice", "bob"):
        (enrol / name).mkdir(parents=True, exist_ok=True)
        (enrol / name / "a.wav").write_bytes(Path(model_files[f"{name}_1"]).read_bytes())
    rows = identify([model_files["alice_2"], b, f"ckpt_path={ckpt}", f"enrol_dir={enrol}"])
    model = speakerid.load(ckpt)
    matches = model.identify(
        [model_files["alice_2"], b], {"alice": [model_files["alice_1"]], "bob": [b]}
    )
    assert [(r.speaker, pytest.approx(r.score)) for r in rows] == [tuple(m) for m in matches]
    assert "operating point: eer = 0.5000" in capsys.readouterr().err


def test_operating_points(model_files: dict[str, str], tmp_path: Path) -> None:
    """``stored`` is the chosen one, ``far@<rate>`` any stored FAR target; an older model
    without a choice decides at its EER threshold; a name not stored is refused, listed."""
    ckpt = tmp_path / "chosen.ckpt"
    ckpt.write_bytes(Path(model_files["checkpoint"]).read_bytes())
    chosen = {
        **STORED,
        "far_targets": {"0.01": 0.7, "0.001": 0.8},
        "operating_point": "far@0.001",
        "intervals": {"far@0.001": [0.75, 0.85]},
        "enough_trials": {"far@0.001": False},
    }
    save_thresholds(ckpt, chosen)
    point = speakerid.load(ckpt).operating_point
    assert (point.name, point.threshold) == ("far@0.001", 0.8)
    assert "0.7500 to 0.8500; too few trials behind it" in point.describe()
    assert speakerid.load(ckpt, threshold="far").threshold == 0.7
    assert speakerid.load(model_files["checkpoint"]).operating_point.name == "eer"
    with pytest.raises(ConfigError, match=r"threshold=far@0.05: .* stores eer, far, far@0.001"):
        speakerid.load(ckpt, threshold="far@0.05")
    with pytest.raises(ConfigError, match="threshold must be stored, eer, far, far@<rate>"):
        speakerid.load(ckpt, threshold="tight")


def test_bad_input_is_refused(model_files: dict[str, str], tmp_path: Path) -> None:
    model = speakerid.load(model_files["checkpoint"])
    with pytest.raises(AudioError, match="waveform 1: a non-empty 1-D float waveform"):
        model.embed([np.zeros(1600, np.float32), np.zeros(1600, np.int16)])
    with pytest.raises(AudioError, match="waveform 0: holds NaN"):
        model.embed(np.full(1600, np.nan, np.float32))
    with pytest.raises(ConfigError, match="enrolment: speaker name -> a non-empty list"):
        model.enrol({"alice": model_files["alice_1"]})  # a path, not a list of recordings
    with pytest.raises(ConfigError, match="crops=-1"):
        model.embed(model_files["alice_1"], crops=-1)
    bare = tmp_path / "bare.ckpt"
    bare.write_bytes(Path(model_files["checkpoint"]).read_bytes())
    save_thresholds(bare, {})
    unthresholded = speakerid.load(bare)  # embedding needs no threshold ...
    assert unthresholded.embed(model_files["alice_1"]).shape == (16,)
    with pytest.raises(ConfigError, match="holds no stored thresholds: run `speakerid-eval"):
        unthresholded.verify(model_files["alice_1"], model_files["bob_1"])  # ... a decision does
    with pytest.raises(ConfigError, match="holds no stored thresholds"):
        speakerid.load(bare, threshold="eer")
