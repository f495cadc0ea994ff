"""3D-Speaker's released models (``speakerlab``) as speakerid checkpoints.

3D-Speaker releases the embedding model's plain state dict (``campplus_voxceleb.bin``,
``campplus_cn_common.bin``, ``pretrained_eres2netv2.ckpt``, ...). Its extraction
(``speakerlab/bin/infer_sv.py``) computes Kaldi fbank (80 mels, povey window, no dither) of the
[-1, 1] waveform and subtracts each utterance's mean frame; so does the front end written here.
"""

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

from torch import Tensor, nn

from speakerid.errors import ConfigError

# 3D-Speaker's extraction front end (speakerlab.process.processor.FBank(80, 16000, mean_nor=True))
FBANK = (
    "features=fbank",
    "features.num_mels=80",
    "features.window=povey",
    "features.int16_scale=false",
    "features.mean_norm=true",
    "features.dither=0.0",
)


class SpeakerlabModel(NamedTuple):
    """How one of 3D-Speaker's models is built here: our backbone choice, the key map of its
    weights, and the tensor whose first size is the embedding's."""

    backbone: str
    rename: Callable[[Mapping[str, Tensor], nn.Module, str], dict[str, Tensor]]
    embedding_key: str


def _models() -> dict[str, SpeakerlabModel]:
    from speakerid.pretrained.campplus_keys import campplus_state_dict
    from speakerid.pretrained.eres2net_keys import eres2netv2_state_dict

    return {
        "campplus": SpeakerlabModel(
            "campplus_3dspeaker", campplus_state_dict, "xvector.dense.linear.weight"
        ),
        "eres2netv2": SpeakerlabModel("eres2netv2", eres2netv2_state_dict, "seg_1.weight"),
    }


class SpeakerlabConverter:
    """``speakerid-prepare pretrained=speakerlab pretrained.path=FILE pretrained.model=NAME``: a
    released 3D-Speaker state dict as a speakerid checkpoint (the embedding size read from the
    weights; a head with no classes, GE2E's, is stored).

    Args:
        path: the state-dict file.
        model: ``campplus`` or ``eres2netv2``.
    """

    def __init__(self, path: str, model: str) -> None:
        self.path = Path(path)
        self.model = model

    @property
    def name(self) -> str:
        """``3dspeaker-<model>`` (the default checkpoint's name)."""
        return f"3dspeaker-{self.model}"

    def convert(self, output: Path) -> dict:
        """Write the checkpoint; return what was written (the source file's sha256 included)."""
        from hydra.utils import instantiate

        from speakerid.checkpoints import compose_run_config, read_weights, write_converted
        from speakerid.utils.io import file_sha256

        models = _models()
        if self.model not in models:
            raise ConfigError(f"pretrained.model={self.model!r}: one of {sorted(models)}")
        if not self.path.is_file():
            raise ConfigError(f"{self.path}: not found")
        state = read_weights(self.path)
        spec = models[self.model]
        if not isinstance(state, Mapping) or spec.embedding_key not in state:
            raise ConfigError(f"{self.path}: not a 3D-Speaker {self.model} state dict")
        overrides = [
            f"model/backbone={spec.backbone}",
            f"model.backbone.embed_dim={state[spec.embedding_key].shape[0]}",
            *FBANK,
            "loss=ge2e",  # a head with no classes
            "data.num_speakers=null",
        ]
        run = compose_run_config(overrides, output.parent.resolve())
        renamed = spec.rename(state, instantiate(run.model.backbone), str(self.path))
        source = {
            "toolkit": "3d-speaker",
            "model": self.model,
            "path": str(self.path),
            "sha256": {self.path.name: file_sha256(self.path)},
        }
        weights = {f"backbone.{k}": v for k, v in renamed.items()}
        return write_converted(output, run, weights, source, [self.path])
