"""WeSpeaker's ResNets and ECAPA-TDNNs: our backbones (built from their YAMLs) hold WeSpeaker's
randomly initialised weights through the key converters and compute WeSpeaker's embeddings, in
eval mode (random batch-norm statistics) and in training mode (batch statistics)."""

import time

import pytest
import torch
from hydra.utils import instantiate
from tests.conftest import compose_config
from tests.references import wespeaker

from speakerid.backbones import EcapaWespeaker, ResNet34
from speakerid.errors import ConfigError
from speakerid.pretrained.wespeaker_keys import (
    WESPEAKER_MODELS,
    backbone_weights,
    converted,
    ecapa_key,
    model_overrides,
    resnet_key,
)

RESNETS = ("ResNet34", "ResNet50", "ResNet101", "ResNet152", "ResNet221", "ResNet293")
ECAPAS = ("ECAPA_TDNN_GLOB_c512", "ECAPA_TDNN_c512", "ECAPA_TDNN_c1024", "ECAPA_TDNN_GLOB_c1024")
DEEP = RESNETS[1:]  # compared at width 8: full size, ResNet293's forward takes minutes here
TOLERANCE = 1e-5  # of the reference output's largest magnitude


def _reference(name: str) -> torch.nn.Module:
    """WeSpeaker's ``name`` at its recipe's size (80 mels; 256-d ResNets, 192-d ECAPAs)."""
    if name in RESNETS:
        return getattr(wespeaker("models.resnet"), name)(feat_dim=80, embed_dim=256)
    return getattr(wespeaker("models.ecapa_tdnn"), name)(feat_dim=80, embed_dim=192)


def _narrow(full: torch.nn.Module) -> torch.nn.Module:
    """WeSpeaker's bottleneck ResNet of ``full``'s stage depths, 8 base channels."""
    resnet = wespeaker("models.resnet")
    depths = [len(getattr(full, f"layer{i}")) for i in range(1, 5)]
    return resnet.ResNet(resnet.Bottleneck, depths, m_channels=8, feat_dim=80, embed_dim=256)


def _randomize_norms(model: torch.nn.Module) -> None:
    """Batch norms with non-trivial affine parameters and running statistics, so that eval mode
    tests more than the identity (variances near 1 keep 300 layers' outputs finite)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.normal_(0.0, 0.2)
                module.running_var.uniform_(0.7, 1.4)
                if module.affine:
                    module.weight.uniform_(0.6, 1.1)
                    module.bias.normal_(0.0, 0.1)


def _ours(name: str, theirs: torch.nn.Module, extra: tuple[str, ...] = ()) -> torch.nn.Module:
    """Ours as the converter builds it from WeSpeaker's config, holding ``theirs``' weights (and
    a training head, which the converter drops)."""
    args = {"feat_dim": 80, "embed_dim": 256 if name in RESNETS else 192}
    cfg = compose_config("train", [*model_overrides(name, args), *extra])
    ours = instantiate(cfg.model.backbone)
    state = {**theirs.state_dict(), "projection.weight": torch.randn(10, ours.embed_dim)}
    ours.load_state_dict(converted(state, WESPEAKER_MODELS[name].rename, ours), strict=True)
    return ours


def _max_relative_difference(theirs: torch.nn.Module, ours: torch.nn.Module, x: torch.Tensor):
    reference = theirs(x.clone())[-1]  # WeSpeaker returns (aux, embedding)
    return ((ours(x) - reference).abs().max() / reference.abs().max()).item()


SLOW = pytest.mark.slow  # the bottleneck path is resnet293's too; these add only depth
CASES = [pytest.param(n, marks=SLOW) if n in DEEP[:-1] else n for n in (*RESNETS, *ECAPAS)]


@pytest.mark.parametrize("name", CASES)
def test_our_backbone_computes_wespeakers_embeddings(name: str) -> None:
    """Full size: the same parameters and weights; the same embeddings in eval and training
    mode (the deeper ResNets at 8 base channels, their YAML's layers otherwise)."""
    torch.manual_seed(0)
    theirs = _reference(name)
    ours = _ours(name, theirs)
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in theirs.parameters())
    if name in DEEP:
        theirs = _narrow(theirs)
        ours = _ours(name, theirs, ("model.backbone.width=8",))
    _randomize_norms(theirs)
    ours.load_state_dict(converted(theirs.state_dict(), WESPEAKER_MODELS[name].rename, ours))
    x = torch.randn(2, 200 if name == "ECAPA_TDNN_GLOB_c512" else 64, 80)
    started = time.perf_counter()
    with torch.no_grad():
        eval_difference = _max_relative_difference(theirs.eval(), ours.eval(), x)
        train_difference = _max_relative_difference(theirs.train(), ours.train(), x)
    print(
        f"{name}: {count:,} parameters; relative difference eval {eval_difference:.2e}, "
        f"train {train_difference:.2e}; {time.perf_counter() - started:.1f} s"
    )
    assert eval_difference <= TOLERANCE
    assert train_difference <= TOLERANCE


def test_two_embedding_layers_and_embedding_norm_convert() -> None:
    """WeSpeaker's ``two_emb_layer`` (ResNets) and ``emb_bn`` (ECAPA) options, small."""
    torch.manual_seed(0)
    resnet = wespeaker("models.resnet")
    theirs = resnet.ResNet(
        resnet.BasicBlock, [1, 1, 1, 1], m_channels=8, feat_dim=40, embed_dim=16, two_emb_layer=True
    )
    ours = ResNet34(
        num_mels=40,
        width=8,
        embed_dim=16,
        depths=(1, 1, 1, 1),
        unbiased_std=True,
        two_embedding_layers=True,
    )
    ecapa = wespeaker("models.ecapa_tdnn")
    theirs_ecapa = ecapa.ECAPA_TDNN(channels=32, feat_dim=40, embed_dim=16, emb_bn=True)
    ours_ecapa = EcapaWespeaker(
        num_mels=40, channels=32, embed_dim=16, global_context=False, embedding_norm=True
    )
    x = torch.randn(3, 64, 40)
    pairs = ((theirs, ours, resnet_key), (theirs_ecapa, ours_ecapa, ecapa_key))
    for reference, model, rename in pairs:
        _randomize_norms(reference)
        model.load_state_dict(converted(reference.state_dict(), rename, model), strict=True)
        with torch.no_grad():
            for mode in (False, True):
                assert (
                    _max_relative_difference(reference.train(mode), model.train(mode), x)
                    < TOLERANCE
                )


def test_the_converter_drops_the_head_and_names_what_does_not_fit() -> None:
    theirs = wespeaker("models.resnet").ResNet34(feat_dim=40, embed_dim=32).state_dict()
    wrapped = {"state_dict": {**theirs, "projection.weight": torch.zeros(7, 32)}}
    assert set(backbone_weights(wrapped)) == set(theirs)
    ours = ResNet34(num_mels=40, embed_dim=32, unbiased_std=True)
    assert set(converted(wrapped, resnet_key, ours)) == set(ours.state_dict())
    broken = {k: v for k, v in theirs.items() if k != "seg_1.bias"}
    broken["seg_3.weight"] = theirs["seg_1.weight"]
    named = r"unexpected keys seg_3.weight; missing keys \(our names\) embedding.bias"
    with pytest.raises(ConfigError, match=named):
        converted(broken, resnet_key, ours)
    with pytest.raises(ConfigError, match=r"seg_1.weight \(32, 2560\) vs \(16, 2560\)"):
        converted(theirs, resnet_key, ResNet34(num_mels=40, embed_dim=16, unbiased_std=True))
    with pytest.raises(ConfigError, match=r"fit EcapaWespeaker: unexpected keys conv1\.weight"):
        converted(theirs, ecapa_key, EcapaWespeaker(num_mels=40, channels=16, embed_dim=8))


def test_wespeakers_model_args_become_overrides_or_are_refused() -> None:
    args = {"feat_dim": 80, "embed_dim": 256, "pooling_func": "TSTP", "two_emb_layer": True}
    assert model_overrides("ResNet152", args) == (
        "model/backbone=resnet293",
        "model.backbone.depths=[3,8,36,3]",
        "features.num_mels=80",
        "model.backbone.embed_dim=256",
        "model.backbone.two_embedding_layers=true",
    )
    with pytest.raises(ConfigError, match="'MQMHASTP': only 'TSTP'"):
        model_overrides("ResNet34", {**args, "pooling_func": "MQMHASTP"})
    with pytest.raises(ConfigError, match=r"model_args \['m_channels'\]"):
        model_overrides("ResNet34", {"m_channels": 64})
    with pytest.raises(ConfigError, match="'XVEC_MHE' has no backbone here"):
        model_overrides("XVEC_MHE", {})


def test_a_padded_utterance_embeds_as_it_does_alone() -> None:
    """EcapaWespeaker in eval mode: masked pooling, SE means and zeroed padding before every
    wider-than-one convolution make batching exact."""
    torch.manual_seed(0)
    net = EcapaWespeaker(num_mels=40, channels=32, embed_dim=16, aggregation_channels=48)
    _randomize_norms(net)
    net.eval()
    short = torch.randn(1, 50, 40)
    alone = net(short, torch.tensor([50]))
    batch = torch.cat([torch.cat([short, torch.randn(1, 30, 40)], dim=1), torch.randn(1, 80, 40)])
    together = net(batch, torch.tensor([50, 80]))[:1]
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
