"""WeSpeaker's model weights under speakerid's names: one key map per architecture.

WeSpeaker (Wang et al. 2023, https://arxiv.org/abs/2210.17016) saves ``model.state_dict()`` with
the training head attached as ``projection`` (its released ``avg_model.pt`` holds
``projection.weight``, sized for the training speakers); sometimes wrapped as
``{"state_dict": ...}``. The head is dropped here, the backbone's keys renamed, and the result
checked against our backbone (every key present, nothing left over, the same shapes), so that
``load_state_dict(strict=True)`` takes it. Parity: tests/integration/test_parity_wespeaker.py.

Example:
    >>> resnet_key("layer3.0.shortcut.1.running_var")
    'layers.2.0.shortcut.1.running_var'
    >>> ecapa_key("layer2.se_res2block.1.convs.6.weight")
    'blocks.0.res2.branches.6.conv.weight'
"""

from collections.abc import Callable, Mapping
from typing import NamedTuple

from torch import Tensor, nn

from speakerid.errors import ConfigError
from speakerid.pretrained.campplus_keys import campplus_key
from speakerid.pretrained.keys import Rule, rename_key, rename_state_dict

RESNET_RULES: tuple[Rule, ...] = (
    (r"conv1\.(.+)", "stem.0.{0}"),
    (r"bn1\.(.+)", "stem.1.{0}"),
    (r"layer([1-4])\.(.+)", "layers.{0:-1}.{1}"),  # blocks keep their names (conv1, shortcut)
    (r"seg_1\.(.+)", "embedding.{0}"),
    (r"seg_bn_1\.(.+)", "embedding2.1.{0}"),  # two_emb_layer: ReLU, BN (no affine), Linear
    (r"seg_2\.(.+)", "embedding2.2.{0}"),
)
# Inside WeSpeaker's SE_Res2Block: 0 ConvReluBn, 1 Res2Net convs + bns, 2 ConvReluBn, 3 SE.
_BLOCK_PARTS = (
    (r"0\.(.+)", "pre.{0}"),
    (r"1\.convs\.(\d+)\.(.+)", "res2.branches.{0}.conv.{1}"),
    (r"1\.bns\.(\d+)\.(.+)", "res2.branches.{0}.bn.{1}"),
    (r"2\.(.+)", "post.{0}"),
    (r"3\.linear1\.(.+)", "se.down.{0}"),
    (r"3\.linear2\.(.+)", "se.up.{0}"),
)
ECAPA_RULES: tuple[Rule, ...] = (
    (r"layer1\.(.+)", "stem.{0}"),
    *(  # layer2 .. layer4: blocks.0 .. blocks.2
        (rf"layer{n}\.se_res2block\.{theirs}", f"blocks.{n - 2}.{ours}")
        for n in (2, 3, 4)
        for theirs, ours in _BLOCK_PARTS
    ),
    (r"conv\.(.+)", "aggregate.{0}"),
    (r"pool\.linear1\.(.+)", "pool.attend.{0}"),
    (r"pool\.linear2\.(.+)", "pool.score.{0}"),
    (r"bn\.(.+)", "pool_norm.{0}"),
    (r"linear\.(.+)", "embedding.{0}"),
    (r"bn2\.(.+)", "embedding_norm.{0}"),  # emb_bn
)


def resnet_key(key: str) -> str:
    """A WeSpeaker ResNet (``wespeaker/models/resnet.py``) key -> ``ResNet34``'s."""
    return rename_key(key, RESNET_RULES)


def ecapa_key(key: str) -> str:
    """A WeSpeaker ECAPA-TDNN (``wespeaker/models/ecapa_tdnn.py``) key -> ``EcapaWespeaker``'s."""
    return rename_key(key, ECAPA_RULES)


def backbone_weights(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A WeSpeaker checkpoint's backbone weights: ``{"state_dict": ...}`` unwrapped, the
    training head (``projection.*``) dropped."""
    inner = state.get("state_dict", state)
    if not isinstance(inner, Mapping):
        raise ConfigError(f"not a WeSpeaker state dict: 'state_dict' holds {type(inner).__name__}")
    return {k: v for k, v in inner.items() if not k.startswith("projection.")}


def converted(
    state: Mapping[str, Tensor],
    rename: Callable[[str], str],
    model: nn.Module,
    origin: str = "WeSpeaker state dict",
) -> dict[str, Tensor]:
    """``state`` (WeSpeaker's, head included or not) under ``model``'s names, ready for
    ``model.load_state_dict(..., strict=True)``.

    Raises:
        ConfigError: naming WeSpeaker's keys ``model`` has no place for, those it lacks, and
            tensors whose shapes differ.
    """
    return rename_state_dict(backbone_weights(state), rename, model, origin)


class WespeakerModel(NamedTuple):
    """How one of WeSpeaker's models (its config.yaml ``model``) is built here: a
    conf/model/backbone choice, Hydra overrides on it, and the key map of its weights."""

    backbone: str
    overrides: tuple[str, ...]
    rename: Callable[[str], str]
    pooling: str  # the only ``pooling_func`` of WeSpeaker's that our backbone computes


def _deeper(depths: str) -> WespeakerModel:
    """A bottleneck ResNet as resnet293 with other stage depths (no YAML of its own: each
    full-size YAML trains a step in the test suite, and these have no released weights or
    are slower than 293 is worth)."""
    return WespeakerModel("resnet293", (f"model.backbone.depths=[{depths}]",), resnet_key, "TSTP")


WESPEAKER_MODELS: dict[str, WespeakerModel] = {
    "ResNet34": WespeakerModel("resnet34", (), resnet_key, "TSTP"),
    "ResNet50": _deeper("3,4,6,3"),
    "ResNet101": _deeper("3,4,23,3"),
    "ResNet152": _deeper("3,8,36,3"),
    "ResNet221": _deeper("6,16,48,3"),
    "ResNet293": WespeakerModel("resnet293", (), resnet_key, "TSTP"),
    "ECAPA_TDNN_GLOB_c512": WespeakerModel("ecapa_wespeaker", (), ecapa_key, "ASTP"),
    "ECAPA_TDNN_c512": WespeakerModel("ecapa_wespeaker_c512", (), ecapa_key, "ASTP"),
    "ECAPA_TDNN_c1024": WespeakerModel("ecapa_wespeaker_c1024", (), ecapa_key, "ASTP"),
    "ECAPA_TDNN_GLOB_c1024": WespeakerModel("ecapa_wespeaker_glob_c1024", (), ecapa_key, "ASTP"),
    "CAMPPlus": WespeakerModel("campplus", (), campplus_key, "TSTP"),
}

# WeSpeaker's ``model_args`` -> our keys (``feat_dim`` is the front end's, ``num_mels`` follows it).
MODEL_ARGS = {
    "feat_dim": "features.num_mels",
    "embed_dim": "model.backbone.embed_dim",
    "two_emb_layer": "model.backbone.two_embedding_layers",  # ResNets
    "emb_bn": "model.backbone.embedding_norm",  # ECAPA-TDNNs
}


def model_overrides(
    name: str,
    model_args: Mapping[str, object],
    models: Mapping[str, WespeakerModel] = WESPEAKER_MODELS,
) -> tuple[str, ...]:
    """Hydra overrides of ``train``'s config that build WeSpeaker's ``model: name`` (one of
    ``models``) with its ``model_args`` here: the backbone choice, its settings, then the
    arguments.

    Example:
        >>> model_overrides("ResNet34", {"feat_dim": 80, "embed_dim": 256, "pooling_func": "TSTP"})
        ('model/backbone=resnet34', 'features.num_mels=80', 'model.backbone.embed_dim=256')

    Raises:
        ConfigError: a model we do not build, another pooling, or an argument we do not have.
    """
    if name not in models:
        raise ConfigError(f"WeSpeaker model {name!r} has no backbone here: {sorted(models)}")
    model = models[name]
    args = dict(model_args)
    pooling = args.pop("pooling_func", model.pooling)
    if pooling != model.pooling:
        raise ConfigError(
            f"{name} with pooling_func {pooling!r}: only {model.pooling!r} is built here"
        )
    unknown = sorted(set(args) - set(MODEL_ARGS))
    if unknown:
        raise ConfigError(
            f"{name}: model_args {unknown} have no setting here ({sorted(MODEL_ARGS)} do)"
        )
    settings = tuple(
        f"{MODEL_ARGS[key]}={str(value).lower() if isinstance(value, bool) else value}"
        for key, value in args.items()
    )
    return (f"model/backbone={model.backbone}", *model.overrides, *settings)
