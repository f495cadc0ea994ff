"""``speakerid-prepare pretrained=speechbrain``: a SpeechBrain ECAPA folder in its released layout
(hyperparams.yaml, embedding_model.ckpt, mean_var_norm_emb.ckpt, classifier.ckpt,
label_encoder.txt), written with random weights, becomes a speakerid checkpoint whose embeddings
equal SpeechBrain's own front end + model on the same wav."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from tests.conftest import compose_config

from speakerid.errors import ConfigError
from speakerid.inference import embed_files, load_system
from speakerid.prepare import prepare
from speakerid.pretrained import SpeechBrainEncoder

HYPERPARAMS = """\
# ############################################################################
# Model: ECAPA big for Speaker verification (the released file's layout, small sizes)
# ############################################################################

n_mels: 80
pretrained_path: speechbrain/spkrec-ecapa-voxceleb
out_n_neurons: 5

compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>

mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False

embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [32, 32, 32, 32, 96]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 16
    lin_neurons: 24

classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: 24
    out_neurons: !ref <out_n_neurons>

mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization
    norm_type: global
    std_norm: False

modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    mean_var_norm_emb: !ref <mean_var_norm_emb>
    classifier: !ref <classifier>

label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        mean_var_norm_emb: !ref <mean_var_norm_emb>
        classifier: !ref <classifier>
        label_encoder: !ref <label_encoder>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
        mean_var_norm_emb: !ref <pretrained_path>/mean_var_norm_emb.ckpt
        classifier: !ref <pretrained_path>/classifier.ckpt
        label_encoder: !ref <pretrained_path>/label_encoder.txt
"""


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder, with SpeechBrain's modules' random weights (batch-norm statistics randomized)."""
    from speechbrain.dataio.encoder import CategoricalEncoder
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier
    from speechbrain.processing.features import InputNormalization

    folder = tmp_path_factory.mktemp("spkrec-ecapa")
    torch.manual_seed(0)
    model = ECAPA_TDNN(80, channels=[32] * 4 + [96], attention_channels=16, lin_neurons=24)
    for name, tensor in model.state_dict().items():
        if name.endswith("running_mean"):
            tensor.normal_(0, 0.1)
        elif name.endswith("running_var"):
            tensor.uniform_(0.5, 2.0)
    (folder / "hyperparams.yaml").write_text(HYPERPARAMS)
    torch.save(model.state_dict(), folder / "embedding_model.ckpt")
    torch.save(Classifier(24, out_neurons=5).state_dict(), folder / "classifier.ckpt")
    InputNormalization(norm_type="global", std_norm=False)._save(folder / "mean_var_norm_emb.ckpt")
    encoder = CategoricalEncoder()
    encoder.update_from_iterable([f"id{i}" for i in range(5)])
    encoder.save(folder / "label_encoder.txt")
    return folder


def test_a_converted_speechbrain_ecapa_embeds_as_speechbrain_does(
    released: Path, tmp_path: Path
) -> None:
    output = tmp_path / "sb.ckpt"
    before = {p.name: p.read_bytes() for p in released.iterdir()}
    summary = prepare(
        compose_config(
            "prepare", ["pretrained=speechbrain", f"pretrained.path={released}", f"output={output}"]
        )
    )
    assert summary["checkpoint"] == str(output) and set(summary["sha256"]) == {
        "hyperparams.yaml",
        "embedding_model.ckpt",
    }
    assert {p.name: p.read_bytes() for p in released.iterdir()} == before  # read only
    rng = np.random.default_rng(1)
    wavs = []
    for seconds in (1.3, 3.0):
        path = tmp_path / f"{seconds}.wav"
        sf.write(str(path), 0.1 * rng.standard_normal(int(seconds * 16000)), 16000)
        wavs.append(path)
    system, run_cfg, _ = load_system(output)
    ours = embed_files(system, wavs, run_cfg.data.sample_rate)
    theirs = SpeechBrainEncoder(released).eval()
    for path, embedding in zip(wavs, ours, strict=True):
        wav = torch.from_numpy(sf.read(str(path), dtype="float32")[0])[None]
        with torch.inference_mode():
            reference = theirs(wav, torch.tensor([wav.shape[1]]))[0]
        cosine = torch.nn.functional.cosine_similarity(embedding, reference, dim=0)
        assert cosine >= 0.99999, (path.name, float(cosine))


def test_what_the_converter_cannot_take_is_one_line(released: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "xvector"
    foreign.mkdir()
    (foreign / "embedding_model.ckpt").write_bytes((released / "embedding_model.ckpt").read_bytes())
    (foreign / "hyperparams.yaml").write_text(
        "embedding_model: !new:speechbrain.lobes.models.Xvector.Xvector\n  in_channels: 24\n"
    )
    base = ["pretrained=speechbrain", f"output={tmp_path}/x.ckpt"]
    with pytest.raises(ConfigError, match=r"embedding_model is .*Xvector.*; the converter takes"):
        prepare(compose_config("prepare", [*base, f"pretrained.path={foreign}"]))
    with pytest.raises(ConfigError, match=r"none/hyperparams\.yaml: not found"):
        prepare(compose_config("prepare", [*base, f"pretrained.path={tmp_path}/none"]))
    with pytest.raises(ConfigError, match=r"pretrained needs pretrained\.path=\.\.\."):
        prepare(compose_config("prepare", base))
