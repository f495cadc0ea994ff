"""CAM++ weights from WeSpeaker (``avg_model.pt``: the model's state dict, with its training
head under ``projection.``) and 3D-Speaker (``campplus_voxceleb.bin``, ``campplus_cn_common.bin``:
the embedding model's state dict) into ``speakerid.backbones.CamPlusPlus``. Both toolkits name
CAM++'s tensors alike (WeSpeaker's file is adapted from 3D-Speaker's)."""

from collections.abc import Mapping

from torch import Tensor, nn

from speakerid.pretrained.keys import Rule, rename_key, rename_state_dict

_BN = r"(running_mean|running_var|num_batches_tracked|weight|bias)"
_LAYER = r"xvector\.block(\d+)\.tdnnd(\d+)\."  # 1-based block and layer numbers
_OURS = "blocks.{0:-1}.{1:-1}."

CAMPPLUS_RULES: tuple[Rule, ...] = (
    (r"head\.(.+)", "head.{0}"),  # the FCM: same names (conv1, bn1, layer1.0.conv1, ...)
    (r"xvector\.tdnn\.linear\.weight", "tdnn.weight"),
    (rf"xvector\.tdnn\.nonlinear\.batchnorm\.{_BN}", "tdnn_norm.{0}"),
    (rf"{_LAYER}nonlinear1\.batchnorm\.{_BN}", _OURS + "norm_in.{2}"),
    (rf"{_LAYER}linear1\.weight", _OURS + "bottleneck.weight"),
    (rf"{_LAYER}nonlinear2\.batchnorm\.{_BN}", _OURS + "norm_mid.{2}"),
    (rf"{_LAYER}cam_layer\.linear_local\.(weight|bias)", _OURS + "cam.local.{2}"),
    (rf"{_LAYER}cam_layer\.linear1\.(weight|bias)", _OURS + "cam.squeeze.{2}"),
    (rf"{_LAYER}cam_layer\.linear2\.(weight|bias)", _OURS + "cam.excite.{2}"),
    (rf"xvector\.transit(\d+)\.nonlinear\.batchnorm\.{_BN}", "transits.{0:-1}.0.{1}"),
    (r"xvector\.transit(\d+)\.linear\.weight", "transits.{0:-1}.2.weight"),
    (rf"xvector\.out_nonlinear\.batchnorm\.{_BN}", "out_norm.{0}"),
    (r"xvector\.dense\.linear\.weight", "dense.weight"),
    (rf"xvector\.dense\.nonlinear\.batchnorm\.{_BN}", "dense_norm.{0}"),
)


def campplus_key(key: str) -> str:
    """A CAM++ key of the source -> ours (unchanged if no rule takes it).

    Example:
        >>> campplus_key("xvector.block2.tdnnd5.cam_layer.linear1.bias")
        'blocks.1.4.cam.squeeze.bias'
    """
    return rename_key(key, CAMPPLUS_RULES)


def campplus_state_dict(
    state: Mapping[str, Tensor], model: nn.Module, origin: str = "CAM++ state dict"
) -> dict[str, Tensor]:
    """WeSpeaker's or 3D-Speaker's CAM++ ``state`` under ``model``'s names (a
    ``CamPlusPlus`` of the same sizes), for ``model.load_state_dict``; WeSpeaker's
    ``projection.`` head is left out.

    Raises:
        ConfigError: naming missing, unexpected or misshapen keys (``origin`` first).

    Example:
        >>> from speakerid.backbones import CamPlusPlus
        >>> ours = CamPlusPlus(24, embed_dim=16, init_channels=16, growth=8, layers=(1, 1, 1))
        >>> theirs = {"xvector.dense.linear.weight": ours.dense.weight}
        >>> campplus_state_dict(theirs, ours)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        speakerid.errors.ConfigError: CAM++ state dict: does not fit CamPlusPlus: missing keys ...
    """
    return rename_state_dict(state, campplus_key, model, origin, drop=("projection.",))
