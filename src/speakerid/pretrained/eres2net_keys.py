"""ERes2NetV2 weights from 3D-Speaker (``pretrained_eres2netv2.ckpt``,
``pretrained_eres2netv2w24s4ep4.ckpt``: the embedding model's state dict) into
``speakerid.backbones.ERes2NetV2``."""

from collections.abc import Mapping

from torch import Tensor, nn

from speakerid.pretrained.keys import Rule, rename_key, rename_state_dict

_BN = r"(running_mean|running_var|num_batches_tracked|weight|bias)"
_BLOCK = r"layer(\d)\.(\d+)\."  # a 1-based stage, a 0-based block
_OURS = "stages.{0:-1}.{1}."
# AFF's attention: conv 1x1, BN, SiLU, conv 1x1, BN
_AFF = (("0", "squeeze"), ("1", "squeeze_norm"), ("3", "excite"), ("4", "excite_norm"))

ERES2NETV2_RULES: tuple[Rule, ...] = (
    (r"conv1\.weight", "conv.weight"),
    (rf"bn1\.{_BN}", "norm.{0}"),
    (rf"{_BLOCK}conv1\.weight", _OURS + "reduce.weight"),
    (rf"{_BLOCK}bn1\.{_BN}", _OURS + "reduce_norm.{2}"),
    (rf"{_BLOCK}convs\.(\d+)\.weight", _OURS + "convs.{2}.weight"),
    (rf"{_BLOCK}bns\.(\d+)\.{_BN}", _OURS + "norms.{2}.{3}"),
    *(
        (
            rf"{_BLOCK}fuse_models\.(\d+)\.local_att\.{i}\.{_BN}",
            _OURS + "fusions.{2}." + f"{o}.{{3}}",
        )
        for i, o in _AFF
    ),
    (rf"{_BLOCK}conv3\.weight", _OURS + "expand.weight"),
    (rf"{_BLOCK}bn3\.{_BN}", _OURS + "expand_norm.{2}"),
    (rf"{_BLOCK}shortcut\.([01])\.{_BN}", _OURS + "shortcut.{2}.{3}"),
    (r"layer3_ds\.weight", "downsample.weight"),
    *((rf"fuse34\.local_att\.{i}\.{_BN}", f"fuse.{o}.{{0}}") for i, o in _AFF),
    (r"seg_1\.(weight|bias)", "embedding.{0}"),
)


def eres2netv2_key(key: str) -> str:
    """A ERes2NetV2 key of the source -> ours (unchanged if no rule takes it).

    Example:
        >>> eres2netv2_key("layer3.0.fuse_models.0.local_att.4.running_var")
        'stages.2.0.fusions.0.excite_norm.running_var'
    """
    return rename_key(key, ERES2NETV2_RULES)


def eres2netv2_state_dict(
    state: Mapping[str, Tensor], model: nn.Module, origin: str = "ERes2NetV2 state dict"
) -> dict[str, Tensor]:
    """3D-Speaker's ERes2NetV2 ``state`` under ``model``'s names (an ``ERes2NetV2`` of the
    same sizes), for ``model.load_state_dict``. Its ``two_emb_layer`` variant (``seg_bn_1``,
    ``seg_2``; no released model has it) is not ours: those keys are named as unexpected.

    Raises:
        ConfigError: naming missing, unexpected or misshapen keys (``origin`` first).

    Example:
        >>> from speakerid.backbones import ERes2NetV2
        >>> ours = ERes2NetV2(16, embed_dim=8, channels=4, depths=(1, 1, 1, 1))
        >>> theirs = {"seg_2.weight": ours.embedding.weight}
        >>> eres2netv2_state_dict(theirs, ours, "x.ckpt")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        speakerid.errors.ConfigError: x.ckpt: does not fit ERes2NetV2: unexpected keys seg_2...
    """
    return rename_state_dict(state, eres2netv2_key, model, origin)
