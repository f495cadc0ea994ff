"""WeSpeaker's released models as speakerid checkpoints.

A WeSpeaker model folder as its toolkit releases it holds ``avg_model.pt`` (the model's state
dict, its training head under ``projection.``) and ``config.yaml`` (``model``, ``model_args``,
``dataset_args``). The backbone is built from ``model`` / ``model_args``
(:data:`~speakerid.pretrained.wespeaker_keys.WESPEAKER_MODELS`,
:data:`~speakerid.pretrained.redimnet_keys.REDIMNET2_MODELS`), the front end as WeSpeaker
extracts embeddings (``wespeaker/cli/speaker.py``): Kaldi fbank with a Hamming window on the
int16 scale, no dither, each utterance minus its mean frame (``fbank_args``); or, for ReDimNet2,
the model's own ``tfmel`` front end (``tfmel_args``; ``features=tfmel``).
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


# ``tfmel_args`` -> ``TfMel``'s settings (``n_mels`` is checked against the model's feat_dim;
# ``do_spec_aug`` is training-only, ``sample_rate`` must be 16 kHz)
TFMEL_ARGS = {
    "hop_length": "hop_length",
    "win_length": "win_length",
    "n_fft": "n_fft",
    "f_min": "f_min",
    "f_max": "f_max",
    "norm_signal": "normalize_signal",
    "eps": "eps",
}
PREEMPHASIS = 0.97  # WeSpeaker's PreEmphasis coefficient (``do_preemph: true``)


def front_end_overrides(dataset_args: dict, path: Path) -> tuple[list[str], int]:
    """Our front end for ``dataset_args`` (``fbank_args`` or ``tfmel_args``; other front ends
    refused), and its number of mel channels (which the model's ``feat_dim`` must equal)."""
    frontend = dataset_args.get("frontend", "fbank")
    rate = dataset_args.get("resample_rate", 16000)
    if rate != 16000:
        raise ConfigError(f"{path}: resample_rate {rate}: the converter takes 16 kHz models")
    if frontend == "tfmel":
        return _tfmel_overrides(dataset_args.get("tfmel_args") or {}, path)
    if frontend != "fbank":
        raise ConfigError(
            f"{path}: frontend {frontend!r}: the converter takes fbank and tfmel models"
        )
    fbank = dataset_args.get("fbank_args") or {}
    mels = int(fbank.get("num_mel_bins", 80))
    return [
        *FBANK,
        f"features.num_mels={mels}",
        f"features.frame_length_ms={float(fbank.get('frame_length', 25))}",
        f"features.frame_shift_ms={float(fbank.get('frame_shift', 10))}",
    ], mels


def _tfmel_overrides(args: dict, path: Path) -> tuple[list[str], int]:
    """``features=tfmel`` with WeSpeaker's ``tfmel_args``."""
    args = dict(args)
    rate = args.pop("sample_rate", 16000)
    if rate != 16000:
        raise ConfigError(f"{path}: tfmel_args.sample_rate {rate}: the converter takes 16 kHz")
    args.pop("do_spec_aug", None)  # masks features in training only
    mels = int(args.pop("n_mels", 80))  # TFMelFrontend's default
    preemphasis = PREEMPHASIS if args.pop("do_preemph", True) else 0.0
    unknown = sorted(set(args) - set(TFMEL_ARGS))
    if unknown:
        raise ConfigError(f"{path}: tfmel_args {unknown} have no setting in features=tfmel")
    settings = [
        f"features.{TFMEL_ARGS[k]}={str(v).lower() if isinstance(v, bool) else v}"
        for k, v in args.items()
    ]
    return ["features=tfmel", f"features.num_mels={mels}", f"features.preemphasis={preemphasis}",
            *settings], mels  # fmt: skip


class WeSpeakerConverter:
    """``speakerid-prepare pretrained=wespeaker pretrained.path=DIR``: a released WeSpeaker model
    folder (ResNets, ECAPA-TDNNs, CAM++, ReDimNet2) as a speakerid checkpoint. Its training
    head is not kept (a head with no classes, GE2E's, is stored; fine-tuning chooses its own).

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
        from speakerid.pretrained.redimnet_keys import REDIMNET2_MODELS, redimnet2_weights
        from speakerid.pretrained.wespeaker_keys import (
            WESPEAKER_MODELS,
            converted,
            model_overrides,
        )
        from speakerid.utils.io import file_sha256

        config, weights_file = self._config(), self.path / "avg_model.pt"
        if not weights_file.is_file():
            raise ConfigError(f"{weights_file}: not found (a WeSpeaker model folder holds it)")
        model, model_args = config["model"], config.get("model_args") or {}
        front_end, mels = front_end_overrides(
            config.get("dataset_args") or {}, self.path / "config.yaml"
        )
        if int(model_args.get("feat_dim", mels)) != mels:
            raise ConfigError(
                f"{self.path / 'config.yaml'}: model_args.feat_dim {model_args['feat_dim']} but "
                f"the front end makes {mels} mel channels"
            )
        overrides = [
            *model_overrides(model, model_args, {**WESPEAKER_MODELS, **REDIMNET2_MODELS}),
            *front_end,
            "loss=ge2e",  # a head with no classes
            "data.num_speakers=null",
        ]
        run = compose_run_config(overrides, output.parent.resolve())
        state = read_weights(weights_file)
        backbone = instantiate(run.model.backbone)
        if model in REDIMNET2_MODELS:  # its tfmel front end's buffers are dropped too
            renamed = redimnet2_weights(state, backbone, str(weights_file))
        else:
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
