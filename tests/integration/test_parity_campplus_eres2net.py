"""Parity with the field: WeSpeaker's and 3D-Speaker's CAM++ and 3D-Speaker's ERes2NetV2, built by
their own code (``tests/references.py``) with random weights and random batch-norm statistics,
converted by ``speakerid.pretrained`` and loaded strictly into ours (built from our YAML): the
same embeddings of the same random features, in eval and in training mode, within 1e-5 of the
output's scale."""

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tests.conftest import CONF
from tests.references import speakerlab, wespeaker
from torch import Tensor, nn

from speakerid.backbones import CamPlusPlus, ERes2NetV2
from speakerid.errors import ConfigError
from speakerid.pretrained.campplus_keys import campplus_key, campplus_state_dict
from speakerid.pretrained.eres2net_keys import eres2netv2_state_dict

TOLERANCE = 1e-5  # of the reference output's largest magnitude


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread: as fast for these sizes, and immune to other processes on two cores (two
    threads of small convolutions then spin for seconds)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random biases and affine batch norms, and random running statistics, so that no
    tensor's place in the conversion can be wrong unseen."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                shape = module.running_mean.shape
                module.running_mean.copy_(0.3 * torch.randn(shape, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(shape, generator=generator))
                module.num_batches_tracked.fill_(5)
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
                module.weight.copy_(0.5 + torch.rand(shape, generator=generator))
            bias = getattr(module, "bias", None)
            if isinstance(bias, Tensor) and bias.requires_grad:
                bias.copy_(0.1 * torch.randn(bias.shape, generator=generator))
    return model


def _ours(choice: str, num_mels: int = 80, **settings: object) -> nn.Module:
    """Our backbone from its YAML (``defaults`` followed), with ``settings`` over it."""
    path = CONF / "model/backbone" / f"{choice}.yaml"
    node = OmegaConf.load(path)
    for parent in node.pop("defaults", []):
        node = OmegaConf.merge(OmegaConf.load(path.with_name(f"{parent}.yaml")), node)
    return instantiate(OmegaConf.merge(node, {"num_mels": num_mels, **settings}))


def _loaded(reference: nn.Module, ours: nn.Module, convert) -> nn.Module:
    ours.load_state_dict(convert(_randomized(reference).state_dict(), ours), strict=True)
    return ours


def _gap(reference: nn.Module, ours: nn.Module, x: Tensor, train: bool) -> float:
    """max |ours - theirs| / max |theirs| on ``x`` (B,T,F), at full length."""
    reference.train(train)
    ours.train(train)
    with torch.set_grad_enabled(train):
        theirs = reference(x.clone())
        mine = ours(x, torch.full((len(x),), x.shape[1]))
    return ((mine - theirs).abs().max() / theirs.abs().max()).item()


def _wespeaker_campplus(num_mels: int = 80, **sizes: int) -> nn.Module:
    return wespeaker("models.campplus").CAMPPlus(feat_dim=num_mels, embed_dim=512, **sizes)


def _speakerlab_campplus(num_mels: int = 80, **sizes: int) -> nn.Module:
    dtdnn = speakerlab("models.campplus.DTDNN")
    return dtdnn.CAMPPlus(feat_dim=num_mels, embedding_size=512, **sizes)


@pytest.mark.parametrize(
    ("choice", "reference"),
    [("campplus", _wespeaker_campplus), ("campplus_3dspeaker", _speakerlab_campplus)],
)
def test_campplus_equals_its_source(choice: str, reference) -> None:
    torch.manual_seed(0)
    theirs = reference()
    ours = _loaded(theirs, _ours(choice), campplus_state_dict)
    assert isinstance(ours, CamPlusPlus)
    assert sum(p.numel() for p in ours.parameters()) == 7_176_224
    # 4 utterances: training-mode batch norm of the embedding over 2 would divide each channel
    # by |x1 - x2| / 2 and turn the std's rounding (3D-Speaker's torch.std vs our
    # sqrt(var)) into up to 3e-5
    x = torch.randn(4, 24, 80)
    assert _gap(theirs, ours, x, train=False) <= TOLERANCE
    assert _gap(theirs, ours, x, train=True) <= TOLERANCE


@pytest.mark.parametrize(
    ("choice", "reference"),
    [("campplus", _wespeaker_campplus), ("campplus_3dspeaker", _speakerlab_campplus)],
)
def test_campplus_segments_and_training_step(choice: str, reference) -> None:
    """Narrow, over 230 frames: three CAM segments (the last one short) at the half rate; then
    one training step: the same gradients and batch-norm updates (3D-Speaker's checkpointing
    updates the bottlenecks' statistics a second time in the backward pass: so does ours)."""
    torch.manual_seed(1)
    theirs = reference(16, growth_rate=8, init_channels=16)
    ours = _loaded(theirs, _ours(choice, 16, growth=8, init_channels=16), campplus_state_dict)
    x, weights = torch.randn(4, 230, 16), torch.randn(4, 512)
    assert _gap(theirs, ours, x, train=False) <= TOLERANCE
    theirs.train(), ours.train()
    (theirs(x.clone()) * weights).sum().backward()
    (ours(x, torch.full((4,), 230)) * weights).sum().backward()
    updated = campplus_state_dict(theirs.state_dict(), ours)
    for key, value in ours.state_dict().items():
        torch.testing.assert_close(value, updated[key], msg=key)
    grads = {campplus_key(k): p.grad for k, p in theirs.named_parameters()}
    for key, parameter in ours.named_parameters():
        scale = grads[key].abs().max()
        assert (parameter.grad - grads[key]).abs().max() <= 1e-4 * scale, key


def _speakerlab_eres2netv2(num_mels: int = 80, **sizes: int) -> nn.Module:
    module = speakerlab("models.eres2net.ERes2NetV2")
    return module.ERes2NetV2(feat_dim=num_mels, **{"embedding_size": 192, **sizes})


def test_eres2netv2_equals_its_source() -> None:
    torch.manual_seed(2)
    theirs = _speakerlab_eres2netv2()
    ours = _loaded(theirs, _ours("eres2netv2"), eres2netv2_state_dict)
    assert isinstance(ours, ERes2NetV2)
    assert sum(p.numel() for p in ours.parameters()) == 17_859_632
    x = torch.randn(2, 32, 80)
    assert _gap(theirs, ours, x, train=False) <= TOLERANCE
    assert _gap(theirs, ours, x, train=True) <= TOLERANCE


def test_eres2netv2_w24s4ep4_layout_equals_its_source() -> None:
    """3D-Speaker's other released layout (4 groups, 3 fusions per block, expansion 4),
    narrow, over an odd number of frames (50 -> 25 -> 13 -> 7)."""
    torch.manual_seed(3)
    sizes = {"base_width": 24, "scale": 4, "expansion": 4}
    theirs = _speakerlab_eres2netv2(40, m_channels=8, baseWidth=24, scale=4, expansion=4)
    ours = _loaded(theirs, _ours("eres2netv2", 40, channels=8, **sizes), eres2netv2_state_dict)
    x = torch.randn(2, 50, 40)
    assert _gap(theirs, ours, x, train=False) <= TOLERANCE
    assert _gap(theirs, ours, x, train=True) <= TOLERANCE


@pytest.mark.parametrize(
    ("reference", "ours", "convert", "frames", "length"),
    [
        (
            lambda: _wespeaker_campplus(16, growth_rate=8, init_channels=16),
            lambda: _ours("campplus", 16, growth=8, init_channels=16),
            campplus_state_dict,
            230,
            151,  # 76 frames at the half rate: the padded batch's second segment is mixed
        ),
        (
            lambda: _speakerlab_eres2netv2(40, m_channels=8),
            lambda: _ours("eres2netv2", 40, channels=8),
            eres2netv2_state_dict,
            50,
            37,
        ),
    ],
    ids=["campplus", "eres2netv2"],
)
def test_a_padded_utterance_embeds_as_alone(reference, ours, convert, frames, length) -> None:
    """In eval mode, an utterance padded (with junk) into a longer batch gets the embedding
    the reference gives it alone."""
    torch.manual_seed(4)
    theirs = reference().eval()
    model = _loaded(theirs, ours(), convert).eval()
    x = torch.randn(2, frames, 16 if frames == 230 else 40)
    x[1, length:] = 100.0
    with torch.no_grad():
        alone = theirs(x[1:, :length].clone())
        batched = model(x, torch.tensor([frames, length]))[1:]
    assert (batched - alone).abs().max() <= TOLERANCE * alone.abs().max()


def test_the_converters_name_what_does_not_fit() -> None:
    ours = _ours("campplus", 16, growth=8, init_channels=16, layers=(1, 1, 1))
    theirs = _wespeaker_campplus(16, growth_rate=8, init_channels=16)
    state = {k: v for k, v in theirs.state_dict().items() if "num_batches_tracked" not in k}
    state["projection.weight"] = torch.zeros(10, 512)  # WeSpeaker's training head: dropped
    with pytest.raises(ConfigError, match=r"unexpected keys xvector\.block1\.tdnnd2\."):
        campplus_state_dict(state, ours)  # theirs has 12 layers in its first block, ours 1
    ours = _ours("campplus", 16, growth=8, init_channels=16)
    assert campplus_state_dict(state, ours).keys() == ours.state_dict().keys()
    del state["xvector.dense.linear.weight"]
    with pytest.raises(ConfigError, match=r"x\.pt: .*missing keys \(our names\) dense\.weight"):
        campplus_state_dict(state, ours, "x.pt")
    ours = _ours("eres2netv2", 40, channels=8)
    state = _speakerlab_eres2netv2(40, m_channels=8, embedding_size=64).state_dict()
    with pytest.raises(
        ConfigError, match=r"shapes differ.*seg_1\.weight \(64, 1280\) vs \(192, 1280\)"
    ):
        eres2netv2_state_dict(state, ours)
