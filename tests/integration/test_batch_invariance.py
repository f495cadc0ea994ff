"""Every backbone YAML, with its front end, embeds an utterance padded in a batch of mixed lengths
as it embeds it alone (eval mode): what ``speakerid-embed batch_size=N`` relies on.

Widths are shrunk to keep the test fast; the masking under test does not depend on them.
"""

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from tests.conftest import CONF, compose_config, tiny_overrides

BACKBONES = sorted(path.stem for path in (CONF / "model/backbone").glob("*.yaml"))
# the front end each backbone is used with (fbank where not named)
FRONT_ENDS = {
    "resnet18": "spectrogram_image",
    "audio_encoder_raw": "waveform",
    "ge2e_lstm": "ge2e_mel",
    "redimnet2_b0": "tfmel",
    "redimnet2_b2": "tfmel",
    "redimnet2_b6": "tfmel",
}
EXACT = 1e-5  # 1 - cosine: cosine >= 0.99999 (measured: <= 1.2e-7 for every backbone)
SHRINK = {  # scalar widths of any backbone, set where the YAML has them
    "channels": 16,
    "width": 4,
    "depth": 8,
    "attention_channels": 8,
    "se_channels": 8,
    "aggregation_channels": 48,
    "init_channels": 16,
    "growth": 8,
    "fcm_channels": 8,
    "stats_channels": 16,
    "hidden": 16,
    "pool_channels": 16,
    "out_channels": 16,
}
LISTS = {"depths": [1, 1, 1, 1], "layers": [2, 2, 2], "blocks": [1] * 6}


def _shrink(node: DictConfig) -> None:
    for key, value in (*SHRINK.items(), *LISTS.items()):
        if key in node and OmegaConf.is_list(node[key]) == isinstance(value, list):
            node[key] = value
    if "layers" in node and not OmegaConf.is_list(node.layers):
        node.layers = 1
    if "blocks" in node and not OmegaConf.is_list(node.blocks):
        node.blocks = 1
    if "embed_dim" in node:  # some widths fix the embedding size: keep it consistent
        fixed = {"ResNet18": 8 * node.get("width", 0), "AudioEncoderRaw": 4 * node.get("depth", 0)}
        node.embed_dim = fixed.get(node._target_.rsplit(".", 1)[-1], 16)


def _system(choice: str, tmp_path) -> tuple[torch.nn.Module, torch.nn.Module]:
    overrides = [*tiny_overrides(tmp_path, tmp_path), f"model/backbone={choice}"]
    cfg = compose_config("train", [*overrides, f"features={FRONT_ENDS.get(choice, 'fbank')}"])
    node = cfg.model.backbone
    with open_dict(node):
        _shrink(node.backbone if "backbone" in node else node)  # a wrapper's inner backbone
        _shrink(node)
        if "attention_reductions" in node:  # ReDimNet: C*F channels; 4 x 80 is plenty
            node.channels = 4
    if "backbone" in node:  # Projected: its input is the inner backbone's embedding
        node.backbone.channels = [4, 4, 8, 8]
        node.backbone.blocks = 1
    torch.manual_seed(0)
    return instantiate(cfg.features).eval(), instantiate(node).eval()


@pytest.mark.parametrize("choice", BACKBONES)
def test_a_padded_utterance_embeds_as_it_does_alone(choice: str, tmp_path) -> None:
    features, backbone = _system(choice, tmp_path)
    torch.manual_seed(1)
    samples = [20_000, 15_840, 12_000, 8_880]  # mixed lengths, not multiples of any stride
    batch = torch.zeros(len(samples), max(samples))
    for row, n in enumerate(samples):
        batch[row, :n] = 0.1 * torch.randn(n)
    lengths = torch.tensor(samples)
    with torch.inference_mode():
        together = backbone(*features(batch, lengths))
        for row, n in enumerate(samples):
            alone = backbone(*features(batch[row : row + 1, :n], lengths[row : row + 1]))
            cosine = torch.nn.functional.cosine_similarity(alone, together[row : row + 1])
            gap = 1 - cosine.item()
            assert gap <= EXACT, (
                f"{choice}: utterance {row} ({n} samples) embeds with 1 - cosine {gap:.2e} "
                "in a padded batch against alone"
            )


def test_every_backbone_is_covered() -> None:
    assert len(BACKBONES) >= 20
    assert set(FRONT_ENDS) <= set(BACKBONES)
    assert set(FRONT_ENDS.values()) <= {p.stem for p in (CONF / "features").glob("*.yaml")}
