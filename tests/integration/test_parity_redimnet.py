"""WeSpeaker's ReDimNet2 (``models/redimnet2.py``) and its ``tfmel`` front end: our ``ReDimNet2``
(built from its YAMLs) holds WeSpeaker's randomly initialised weights through the key converter
and computes WeSpeaker's embeddings, in eval mode (random norm statistics and mix weights) and
in training mode (batch statistics); ``TfMel`` computes its features."""

import time
from functools import cache

import pytest
import torch
from hydra.utils import instantiate
from tests.conftest import compose_config
from tests.references import wespeaker

from speakerid.errors import ConfigError
from speakerid.features import TfMel
from speakerid.pretrained.redimnet_keys import REDIMNET2_MODELS, redimnet2_weights

TOLERANCE = 1e-5  # of the reference output's largest magnitude
TFMEL_ARGS = {  # WeSpeaker's ReDimNet2 recipe (examples/voxceleb/v2/conf/redimnet2.yaml)
    "n_mels": 72,
    "hop_length": 160,
    "win_length": 400,
    "n_fft": 512,
    "f_min": 20,
    "f_max": 7600,
    "do_preemph": True,
    "norm_signal": True,
    "do_spec_aug": False,
    "eps": 1e-8,
    "sample_rate": 16000,
}


def _randomize(model: torch.nn.Module) -> None:
    """Norms with non-trivial affine parameters and running statistics, and uneven mix weights
    (WeSpeaker's ``w``, zeros at init), so that more than the identity is compared."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(".w"):
                param.normal_(0.0, 0.5)
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.normal_(0.0, 0.2)
                module.running_var.uniform_(0.7, 1.4)
            if "Norm" in type(module).__name__ and getattr(module, "weight", None) is not None:
                module.weight.uniform_(0.6, 1.1)
                module.bias.normal_(0.0, 0.1)


@cache
def _pair(size: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(WeSpeaker's ReDimNet2<size> with its tfmel front end attached, as its training saves it;
    ours from conf/model/backbone/redimnet2_<size>.yaml with features=tfmel) — same weights.
    Built once per size: a training-mode forward moves both models' statistics alike."""
    torch.manual_seed(0)
    theirs = getattr(wespeaker("models.redimnet2"), f"ReDimNet2{size}")(feat_dim=72, embed_dim=192)
    theirs.add_module("frontend", wespeaker("frontend.tfmel").TFMelFrontend(**TFMEL_ARGS))
    _randomize(theirs)
    built = REDIMNET2_MODELS[f"ReDimNet2{size}"]
    cfg = compose_config(
        "train", [f"model/backbone={built.backbone}", *built.overrides, "features=tfmel"]
    )
    ours = instantiate(cfg.model.backbone)
    state = {**theirs.state_dict(), "projection.weight": torch.randn(10, 192)}
    ours.load_state_dict(redimnet2_weights(state, ours), strict=True)
    return theirs, ours


def _difference(theirs: torch.nn.Module, ours: torch.nn.Module, x: torch.Tensor) -> float:
    """Max |ours - theirs| / max |theirs| on (B,F,T) features (ours take (B,T,F))."""
    with torch.no_grad():
        reference = theirs(x.clone())
        return ((ours(x.transpose(1, 2)) - reference).abs().max() / reference.abs().max()).item()


@pytest.mark.parametrize(("size", "frames"), [("B0", 50), ("B2", 48), ("B6", 32)])
def test_our_redimnet2_computes_wespeakers_embeddings(size: str, frames: int) -> None:
    """B0 on 50 frames: both cut them to 48 (a multiple of the time strides' product)."""
    theirs, ours = _pair(size)
    x = torch.randn(2, 72, frames)
    started = time.perf_counter()
    eval_difference = _difference(theirs.eval(), ours.eval(), x)
    train_difference = _difference(theirs.train(), ours.train(), x)
    print(f"ReDimNet2{size}: eval {eval_difference:.2e}, train {train_difference:.2e}, "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    assert eval_difference <= TOLERANCE
    assert train_difference <= TOLERANCE


@pytest.mark.parametrize("size", ["B0", "B1", "B2", "B3", "B4", "B5", "B6"])
def test_every_size_converts_with_wespeakers_parameter_count(size: str) -> None:
    """B6: 12,394,784 (WeSpeaker's 12 M); the sizes without a YAML are B0's with overrides."""
    theirs, ours = _pair(size)  # strict loading done there
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


def test_tfmel_computes_wespeakers_features() -> None:
    """Float32 rounding: WeSpeaker takes the DFT as a convolution, ours as an FFT."""
    theirs = wespeaker("frontend.tfmel").TFMelFrontend(**TFMEL_ARGS)
    torch.manual_seed(0)
    wav = 0.1 * torch.randn(2, 16123)
    reference, _ = theirs(wav)  # (B,F,T)
    feats, frames = TfMel()(wav, torch.tensor([16123, 16123]))
    assert feats.shape == reference.transpose(1, 2).shape and frames.tolist() == [100, 100]
    difference = (feats - reference.transpose(1, 2)).abs().max() / reference.abs().max()
    assert difference < 3e-5


def test_wespeakers_front_end_and_model_against_ours_on_a_waveform() -> None:
    theirs, ours = _pair("B0")
    wav = 0.1 * torch.randn(1, 12000)
    with torch.no_grad():
        reference = theirs.eval()(theirs.frontend(wav)[0])
        feats, frames = TfMel()(wav, torch.tensor([12000]))
        embedding = ours.eval()(feats, frames)
    assert torch.nn.functional.cosine_similarity(embedding, reference).item() >= 0.99999


def test_tfmel_features_of_an_utterance_do_not_depend_on_its_batch() -> None:
    tfmel = TfMel()
    short = torch.randn(1, 9000)
    alone, frames = tfmel(short, torch.tensor([9000]))
    batch = torch.cat([torch.cat([short, torch.randn(1, 7000)], dim=1), torch.randn(1, 16000)])
    together, both = tfmel(batch, torch.tensor([9000, 16000]))
    assert both.tolist() == [frames.item(), 99]
    torch.testing.assert_close(together[:1, : frames.item()], alone, atol=1e-5, rtol=1e-5)
    assert together[0, frames.item() :].abs().max() == 0


def test_full_lengths_change_nothing_and_short_ones_pool_real_frames() -> None:
    _, ours = _pair("B0")
    ours.eval()
    x = torch.randn(2, 40, 72)
    with torch.no_grad():
        plain = ours(x)
        torch.testing.assert_close(ours(x, torch.tensor([40, 40])), plain, atol=1e-6, rtol=1e-6)
        short = ours(x, torch.tensor([40, 13]))
    assert torch.isfinite(short).all() and not torch.allclose(short[1], plain[1])
    torch.testing.assert_close(short[0], plain[0], atol=1e-6, rtol=1e-6)


def test_the_converter_names_what_does_not_fit() -> None:
    theirs, ours = _pair("B0")
    state = theirs.state_dict()
    wrapped = {"state_dict": {**state, "projection.weight": torch.zeros(7, 192)}}
    assert set(redimnet2_weights(wrapped, ours)) == set(ours.state_dict())
    broken = {k: v for k, v in state.items() if k != "linear.bias"}
    broken["backbone.stage9.0.w"] = state["backbone.stage0.0.w"]
    with pytest.raises(
        ConfigError,
        match=r"unexpected keys backbone.stage9.0.w; missing keys \(our names\) embedding.bias",
    ):
        redimnet2_weights(broken, ours)
    b2 = instantiate(compose_config("train", ["model/backbone=redimnet2_b2"]).model.backbone)
    shapes = (
        r"shapes differ from this ReDimNet2's: backbone\.stem\.0\.weight \(12, 1, 3, 3\) vs \(20,"
    )
    with pytest.raises(ConfigError, match=shapes):
        redimnet2_weights(state, b2)
