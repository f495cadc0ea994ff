"""WeSpeaker's released models as speakerid checkpoints.

A WeSpeaker model folder as its toolkit releases it holds ``avg_model.pt`` (the model's state
dict, its training head under ``projection.``) and ``config.yaml`` (``model``, ``model_args``,
``dataset_args.fbank_args``). The backbone is built from ``model`` / ``model_args``
(:data:`~speakerid.pretrained.wespeaker_keys.WESPEAKER_MODELS`), the front end as WeSpeaker
extracts embeddings (``wespeaker/cli/speaker.py``: Kaldi fbank with a Hamming window on the
int16 scale, no dither, each utterance minus its mean frame).
"""

from pathlib import Path

import yaml

from speakerid.errors import ConfigError

# WeSpeaker's extraction front end, beyond the sizes that config.yaml gives
FBANK = (
    "features=fbank",
    "features.window=hamming",
    "features.int16_scale=true",
    "features.mean_norm=true",
    "features.dither=0.0",
)


def front_end_overrides(dataset_args: dict, path: Path) -> list[str]:
    """Our front end for ``dataset_args`` (its ``fbank_args``; other front ends refused)."""
    frontend = dataset_args.get("frontend", "fbank")
    if frontend != "fbank":
        raise ConfigError(f"{path}: frontend {frontend!r}: the converter takes fbank models")
    rate = dataset_args.get("resample_rate", 16000)
    if rate != 16000:
        raise ConfigError(f"{path}: resample_rate {rate}: the converter takes 16 kHz models")
    fbank = dataset_args.get("fbank_args") or {}
    return [
        *FBANK,
        f"features.num_mels={int(fbank.get('num_mel_bins', 80))}",
        f"features.frame_length_ms={float(fbank.get('frame_length', 25))}",
        f"features.frame_shift_ms={float(fbank.get('frame_shift', 10))}",
    ]


class WeSpeakerConverter:
    """``speakerid-prepare pretrained=wespeaker pretrained.path=DIR``: a released WeSpeaker model
    folder as a speakerid checkpoint. Its training head is not kept (a head with no classes,
    GE2E's, is stored; fine-tuning chooses its own).

    Args:
        path: the model folder (``avg_model.pt`` + ``config.yaml``).
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    @property
    def name(self) -> str:
        """``wespeaker-<model>`` (the default checkpoint's name)."""
        try:
            return f"wespeaker-{self._config()['model']}"
        except (ConfigError, KeyError, TypeError):
            return "wespeaker"

    def _config(self) -> dict:
        path = self.path / "config.yaml"
        if not path.is_file():
            raise ConfigError(f"{path}: not found (a WeSpeaker model folder holds it)")
        config = yaml.safe_load(path.read_text())
        if not isinstance(config, dict) or not isinstance(config.get("model"), str):
            raise ConfigError(f"{path}: not a WeSpeaker config (no model: name)")
        return config

    def convert(self, output: Path) -> dict:
        """Write the checkpoint; return what was written (the source files' sha256 included)."""
        from hydra.utils import instantiate

        from speakerid.checkpoints import compose_run_config, read_weights, write_converted
        from speakerid.pretrained.wespeaker_keys import (
            WESPEAKER_MODELS,
            converted,
            model_overrides,
        )
        from speakerid.utils.io import file_sha256

        config, weights_file = self._config(), self.path / "avg_model.pt"
        if not weights_file.is_file():
            raise ConfigError(f"{weights_file}: not found (a WeSpeaker model folder holds it)")
        model = config["model"]
        overrides = [
            *model_overrides(model, config.get("model_args") or {}),
            *front_end_overrides(config.get("dataset_args") or {}, self.path / "config.yaml"),
            "loss=ge2e",  # a head with no classes
            "data.num_speakers=null",
        ]
        run = compose_run_config(overrides, output.parent.resolve())
        state = read_weights(weights_file)
        backbone = instantiate(run.model.backbone)
        renamed = converted(state, WESPEAKER_MODELS[model].rename, backbone, str(weights_file))
        files = [self.path / "config.yaml", weights_file]
        source = {
            "toolkit": "wespeaker",
            "model": model,
            "path": str(self.path),
            "sha256": {p.name: file_sha256(p) for p in files},
        }
        weights = {f"backbone.{k}": v for k, v in renamed.items()}
        return write_converted(output, run, weights, source, files)
