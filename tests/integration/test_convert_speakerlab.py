"""``speakerid-prepare pretrained=speakerlab``: 3D-Speaker's released state dicts (CAM++ with a
192-d embedding as its zh-cn model, ERes2NetV2), written with speakerlab's random weights, become
speakerid checkpoints whose embeddings equal 3D-Speaker's own extraction
(``speakerlab.process.processor.FBank(80, 16000, mean_nor=True)`` + the model)."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from tests.conftest import compose_config
from tests.references import speakerlab

from speakerid.errors import ConfigError
from speakerid.inference import embed_files, load_system
from speakerid.prepare import prepare


def _reference(model: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if model == "campplus":
        net = speakerlab("models.campplus.DTDNN").CAMPPlus(feat_dim=80, embedding_size=192)
    else:
        net = speakerlab("models.eres2net.ERes2NetV2").ERes2NetV2(feat_dim=80, embedding_size=192)
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            module.running_mean.normal_(0.0, 0.2)
            module.running_var.uniform_(0.7, 1.4)
    return net.eval()


@pytest.mark.parametrize("model", ["campplus", "eres2netv2"])
def test_a_converted_3dspeaker_model_embeds_as_3dspeaker_does(model: str, tmp_path: Path) -> None:
    net = _reference(model)
    weights = tmp_path / f"{model}.bin"
    torch.save(net.state_dict(), weights)
    output = tmp_path / f"{model}.ckpt"
    overrides = [f"pretrained.path={weights}", f"pretrained.model={model}", f"output={output}"]
    summary = prepare(compose_config("prepare", ["pretrained=speakerlab", *overrides]))
    assert summary["toolkit"] == "3d-speaker" and weights.name in summary["sha256"]
    wav_path = tmp_path / "a.wav"
    sf.write(str(wav_path), 0.2 * np.random.default_rng(3).standard_normal(40000), 16000)
    system, run_cfg, _ = load_system(output)
    ours = embed_files(system, [wav_path], run_cfg.data.sample_rate)[0]
    extract = speakerlab("process.processor").FBank(80, sample_rate=16000, mean_nor=True)
    wav = torch.from_numpy(sf.read(str(wav_path), dtype="float32")[0])
    with torch.inference_mode():
        theirs = net(extract(wav)[None])[0]
    cosine = torch.nn.functional.cosine_similarity(ours, theirs, dim=0)
    assert cosine >= 0.99999, float(cosine)


def test_what_the_3dspeaker_converter_cannot_take_is_one_line(tmp_path: Path) -> None:
    weights = tmp_path / "other.bin"
    torch.save({"x": torch.zeros(1)}, weights)
    base = ["pretrained=speakerlab", f"pretrained.path={weights}", f"output={tmp_path}/x.ckpt"]
    with pytest.raises(ConfigError, match=r"pretrained\.model='xvector': one of"):
        prepare(compose_config("prepare", [*base, "pretrained.model=xvector"]))
    with pytest.raises(ConfigError, match=r"other\.bin: not a 3D-Speaker campplus state dict"):
        prepare(compose_config("prepare", [*base, "pretrained.model=campplus"]))
    assert not (tmp_path / "x.ckpt").exists()
