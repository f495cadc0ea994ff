"""WeSpeaker's ReDimNet2 weights (``wespeaker/models/redimnet2.py``) under ``ReDimNet2``'s names.

A released ReDimNet2 ``avg_model.pt`` holds the model (``backbone.*``, ``pool.*``, ``bn.*``,
``linear.*``), the training head (``projection.*``) and, because WeSpeaker attaches its ``tfmel``
front end to the model, that front end's constant buffers (``frontend.*``: pre-emphasis filter,
DFT kernels, mel matrix, fixed by the config's ``tfmel_args``; ``features=tfmel`` computes them).
Head and front end are dropped, the rest renamed by key pattern alone (the index of a layer in
a WeSpeaker stage says what it is: 0 the mix weights, 2 the strided convolution, from 3 on the
residual blocks, then the 1x1 shrink, then the time-context block) and checked against our
model. Parity: tests/integration/test_parity_redimnet.py.

Example:
    >>> redimnet2_key("backbone.stage3.7.conv_block.conv2pw.weight")
    'stages.3.blocks.4.pw2.weight'
    >>> redimnet2_key("backbone.stage4.9.tcm.4.feed_forward.output_dense.bias")
    'stages.4.context.attention.ff2.bias'
"""

from collections.abc import Mapping

from torch import Tensor, nn

from speakerid.pretrained.keys import Rule, rename_key, rename_state_dict
from speakerid.pretrained.wespeaker_keys import WespeakerModel, backbone_weights

_STAGE = r"backbone\.stage(\d+)\."
_MAX_BLOCKS = 16  # residual blocks per stage that a rule is written for (released: 2 to 5)
_RES_BLOCK = (
    ("conv1", "dw1"),
    ("conv1pw", "pw1"),
    ("bn1", "bn1"),
    ("conv2", "dw2"),
    ("conv2pw", "pw2"),
    ("bn2", "bn2"),
)
_CONVNEXT = ((r"dwconvs\.0", "dw"), ("norm", "norm"), ("pwconv1", "pw"))
_ATTENTION = (
    (r"attention\.q_proj", "q"),
    (r"attention\.k_proj", "k"),
    (r"attention\.v_proj", "v"),
    (r"attention\.out_proj", "out"),
    ("layer_norm", "norm1"),
    (r"feed_forward\.intermediate_dense", "ff1"),
    (r"feed_forward\.output_dense", "ff2"),
    ("final_layer_norm", "norm2"),
)
# In a WeSpeaker stage (an nn.Sequential): 0 the mix weights, 1 a reshape, 2 the strided
# convolution, 3.. the residual blocks (``conv_block``), then the 1x1 shrink when expanded, a
# reshape, the time-context block (``red_dim_conv``, ``tcm``, ``exp_dim_conv``), upsampling.
REDIMNET2_RULES: tuple[Rule, ...] = (
    (r"backbone\.stem\.(.+)", "stem.{0}"),
    (_STAGE + r"0\.w", "stages.{0}.mix.logits"),
    (_STAGE + r"2\.(weight|bias)", "stages.{0}.down.{1}"),
    *(
        (_STAGE + rf"{j + 3}\.conv_block\.{theirs}\.(.+)", f"stages.{{0}}.blocks.{j}.{ours}.{{1}}")
        for j in range(_MAX_BLOCKS)
        for theirs, ours in _RES_BLOCK
    ),
    (_STAGE + r"\d+\.([01])\.(.+)", "stages.{0}.shrink.{1}.{2}"),
    (_STAGE + r"\d+\.red_dim_conv\.0\.(.+)", "stages.{0}.context.reduce.{1}"),
    (_STAGE + r"\d+\.red_dim_conv\.1\.(.+)", "stages.{0}.context.reduce_norm.{1}"),
    *(
        (
            _STAGE + rf"\d+\.tcm\.(\d+)\.{theirs}\.(.+)",
            f"stages.{{0}}.context.convs.{{1}}.{ours}.{{2}}",
        )
        for theirs, ours in _CONVNEXT
    ),
    *(
        (_STAGE + rf"\d+\.tcm\.\d+\.{theirs}\.(.+)", f"stages.{{0}}.context.attention.{ours}.{{1}}")
        for theirs, ours in _ATTENTION
    ),
    (_STAGE + r"\d+\.exp_dim_conv\.(.+)", "stages.{0}.context.expand.{1}"),
    (r"backbone\.fin_wght1d\.w", "mix.logits"),
    (r"backbone\.head\.(.+)", "head.{0}"),
    (r"pool\.linear1\.(.+)", "pool.attend.{0}"),
    (r"pool\.linear2\.(.+)", "pool.score.{0}"),
    (r"bn\.(.+)", "pool_norm.{0}"),
    (r"linear\.(.+)", "embedding.{0}"),
)


def redimnet2_key(key: str) -> str:
    """A WeSpeaker ReDimNet2 key -> ``ReDimNet2``'s (unchanged when no rule matches)."""
    return rename_key(key, REDIMNET2_RULES)


def redimnet2_weights(
    state: Mapping[str, Tensor], model: nn.Module, origin: str = "WeSpeaker ReDimNet2 state dict"
) -> dict[str, Tensor]:
    """A WeSpeaker ReDimNet2 state dict (``avg_model.pt``, head and front end included or not,
    ``{"state_dict": ...}`` unwrapped) under ``model``'s names, for
    ``model.load_state_dict(..., strict=True)``.

    Raises:
        ConfigError: naming WeSpeaker's keys ``model`` has no place for, those it lacks, and
            tensors whose shapes differ (another size, or other mels).
    """
    return rename_state_dict(
        backbone_weights(state),
        redimnet2_key,
        model,
        origin,
        drop=("frontend.",),
    )


def _b0_with(*settings: str) -> WespeakerModel:
    """A size without a YAML of its own: redimnet2_b0 with other settings (each full-size
    YAML trains a step in the test suite; these have no released weights)."""
    overrides = tuple(f"model.backbone.{s}" for s in settings)
    return WespeakerModel("redimnet2_b0", overrides, redimnet2_key, "ASTP")


# WeSpeaker's ReDimNet2 model names (config.yaml ``model``) -> how they are built here.
REDIMNET2_MODELS: dict[str, WespeakerModel] = {
    "ReDimNet2B0": WespeakerModel("redimnet2_b0", (), redimnet2_key, "ASTP"),
    "ReDimNet2B1": _b0_with("channels=16", "attention_reductions=[32,32,32,32,16,16]"),
    "ReDimNet2B2": WespeakerModel("redimnet2_b2", (), redimnet2_key, "ASTP"),
    "ReDimNet2B3": _b0_with("channels=24"),
    "ReDimNet2B4": _b0_with(
        "channels=32",
        "expansions=[4,3,2,1,1,1]",
        "attention_reductions=[24,24,24,24,24,24]",
        "out_channels=null",
    ),
    "ReDimNet2B5": _b0_with(
        "channels=48",
        "expansions=[4,3,2,1,1,1]",
        "attention_reductions=[48,48,48,48,32,32]",
        "out_channels=256",
    ),
    "ReDimNet2B6": WespeakerModel("redimnet2_b6", (), redimnet2_key, "ASTP"),
}
