"""Public pretrained encoders as embedding sources: speechbrain-format model folders.

A speechbrain model folder (``hyperparams.yaml`` + ``embedding_model.ckpt`` and friends, e.g. a
copy of ``speechbrain/spkrec-ecapa-voxceleb``) is loaded from local disk only — never downloaded —
and wrapped as ``(wav (B,S), lengths (B,)) -> (B,D)`` like our own systems.
"""

from pathlib import Path

import torch
import yaml
from torch import Tensor, nn

from speakerid.errors import ConfigError
from speakerid.trusted import check_hyperpyyaml


class SpeechBrainEncoder(nn.Module):
    """A speechbrain ``EncoderClassifier`` from a local folder.

    The published ``hyperparams.yaml`` files name their hub repository in ``pretrained_path``;
    it is overridden with the folder itself, and files are used in place (nothing is copied,
    linked or downloaded).

    Args:
        source: the model folder (must hold ``hyperparams.yaml``).
        sample_rate: the rate the model expects (16 kHz for speechbrain's speaker models).
    """

    def __init__(self, source: str | Path, sample_rate: int = 16000) -> None:
        super().__init__()
        from speechbrain.inference.speaker import EncoderClassifier
        from speechbrain.utils.fetching import LocalStrategy

        source = Path(source).resolve()
        if not (source / "hyperparams.yaml").is_file():
            raise ConfigError(f"{source}: not a speechbrain model folder (no hyperparams.yaml)")
        check_hyperpyyaml(source / "hyperparams.yaml")  # its tags would run any Python object
        try:
            self.model = EncoderClassifier.from_hparams(
                source=str(source),
                savedir=str(source),
                overrides={"pretrained_path": str(source)},
                overrides_must_match=False,
                local_strategy=LocalStrategy.NO_LINK,
                run_opts={"device": "cpu"},
            )
        except Exception as err:  # speechbrain raises many kinds for a broken folder
            raise ConfigError(
                f"{source}: speechbrain could not load it ({type(err).__name__}: {str(err)[:300]})"
            ) from None
        self.sample_rate = sample_rate

    def forward(self, wav: Tensor, lengths: Tensor) -> Tensor:
        relative = lengths.float() / wav.shape[1]
        return self.model.encode_batch(wav, wav_lens=relative).squeeze(1)

    def to(self, *args, **kwargs) -> "SpeechBrainEncoder":  # keep speechbrain's device in step
        super().to(*args, **kwargs)
        device = torch.empty(0).to(*args, **kwargs).device
        self.model.device = str(device)
        self.model.mods.to(device)
        return self


class _PlainLoader(yaml.SafeLoader):
    """Reads HyperPyYAML as data: ``!new:X`` / ``!name:X`` / ``!apply:X`` nodes become
    ``{"_tag": X, ...}``, ``!ref <key>`` the referenced top-level value; nothing is built."""


def _tagged(loader: _PlainLoader, suffix: str, node: yaml.Node) -> object:
    if isinstance(node, yaml.MappingNode):
        return {"_tag": suffix.split(":", 1)[-1], **loader.construct_mapping(node, deep=True)}
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return ("ref", loader.construct_scalar(node)) if suffix == "ref" else suffix


_PlainLoader.add_multi_constructor("!", _tagged)

# SpeechBrain's ECAPA_TDNN arguments that our EcapaTdnn takes (ours fixes the others to the
# published models' values: kernels 5,3,3,3,1, dilations 1,2,3,4,1, no groups, no dropout)
ECAPA_FIXED = {
    "kernel_sizes": [5, 3, 3, 3, 1],
    "dilations": [1, 2, 3, 4, 1],
    "groups": [1, 1, 1, 1, 1],
    "dropout": 0.0,
}
ECAPA_CLASS = "speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN"


def read_hyperparams(path: Path) -> dict:
    """``hyperparams.yaml`` as plain data, its top-level ``!ref <key>`` values resolved."""
    tree = yaml.load(path.read_text(), Loader=_PlainLoader)  # a SafeLoader: builds no object
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: not a SpeechBrain hyperparams file (no mapping at the top)")

    def resolve(value: object) -> object:
        if isinstance(value, tuple) and value[0] == "ref":
            key = str(value[1]).strip()
            name = key[1:-1] if key.startswith("<") and key.endswith(">") else None
            return resolve(tree[name]) if name in tree else key
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    return {key: resolve(value) for key, value in tree.items()}


def ecapa_overrides(hparams: dict, path: Path) -> list[str]:
    """Our config overrides for the folder's ECAPA-TDNN and its Fbank front end.

    Raises:
        ConfigError: another embedding model, or settings our EcapaTdnn does not take.
    """
    model = hparams.get("embedding_model")
    if not isinstance(model, dict) or model.get("_tag") != ECAPA_CLASS:
        found = model.get("_tag") if isinstance(model, dict) else model
        raise ConfigError(
            f"{path}: embedding_model is {found!r}; the converter takes {ECAPA_CLASS}"
        )
    channels = list(model.get("channels", [512, 512, 512, 512, 1536]))
    width = channels[0]
    if channels != [width] * 4 + [3 * width]:
        raise ConfigError(f"{path}: channels {channels}: speakerid's EcapaTdnn takes [C]*4 + [3C]")
    for key, value in ECAPA_FIXED.items():
        if key in model and model[key] != value:
            raise ConfigError(f"{path}: {key}={model[key]}: speakerid's EcapaTdnn has {value}")
    features = hparams.get("compute_features") or {}
    num_mels = int(features.get("n_mels", model.get("input_size", 80)))
    norm = hparams.get("mean_var_norm")  # InputNormalization's defaults: global, with std
    mean_norm = isinstance(norm, dict) and norm.get("mean_norm", True)
    if mean_norm and (norm.get("norm_type", "global") != "sentence" or norm.get("std_norm", True)):
        raise ConfigError(
            f"{path}: mean_var_norm {norm}: speakerid's front end does sentence mean "
            "normalization only (norm_type: sentence, std_norm: False)"
        )
    return [
        "model/backbone=ecapa_tdnn",
        f"model.backbone.channels={width}",
        f"model.backbone.embed_dim={int(model.get('lin_neurons', 192))}",
        f"model.backbone.attention_channels={int(model.get('attention_channels', 128))}",
        f"model.backbone.se_channels={int(model.get('se_channels', 128))}",
        f"model.backbone.res2net_scale={int(model.get('res2net_scale', 8))}",
        f"model.backbone.global_context={bool(model.get('global_context', True))}",
        "features=speechbrain_fbank",
        f"features.num_mels={num_mels}",
        f"features.mean_norm={bool(mean_norm)}",
    ]


class SpeechBrainConverter:
    """A SpeechBrain ECAPA-TDNN model folder as released (``hyperparams.yaml`` +
    ``embedding_model.ckpt``; e.g. ``speechbrain/spkrec-ecapa-voxceleb``) as a speakerid
    checkpoint: our EcapaTdnn (which runs SpeechBrain's module) with SpeechBrain's Fbank and
    sentence mean normalization. ``hyperparams.yaml`` is read as data, never executed.

    The folder's ``mean_var_norm_emb.ckpt`` (a global embedding mean) is not applied, as
    SpeechBrain's own verification does not apply it (``encode_batch(normalize=False)``); its
    classifier is not kept (a head with no classes, GE2E's, is stored; fine-tuning picks its own).

    Args:
        path: the model folder.
    """

    name = "speechbrain-ecapa"

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def encoder(self) -> tuple["SpeechBrainEncoder", str, str | None]:
        """The folder used in place (``speakerid-embed pretrained=speechbrain``): SpeechBrain's
        own pipeline, its description and the sha256 of its weights."""
        from speakerid.utils.io import file_sha256

        folder = self.path.resolve()
        weights = folder / "embedding_model.ckpt"
        sha = file_sha256(weights) if weights.is_file() else None
        return SpeechBrainEncoder(folder), f"speechbrain:{folder}", sha

    def convert(self, output: Path) -> dict:
        """Write the checkpoint; return what was written (the source files' sha256 included)."""
        from speakerid.checkpoints import compose_run_config, read_weights, write_converted
        from speakerid.utils.io import file_sha256

        hparams_file, weights_file = (
            self.path / "hyperparams.yaml",
            self.path / "embedding_model.ckpt",
        )
        for needed in (hparams_file, weights_file):
            if not needed.is_file():
                raise ConfigError(f"{needed}: not found (a SpeechBrain model folder holds it)")
        overrides = ecapa_overrides(read_hyperparams(hparams_file), hparams_file)
        overrides += ["loss=ge2e", "data.num_speakers=null"]  # a head with no classes
        config = compose_run_config(overrides, output.parent.resolve())
        state = read_weights(weights_file)
        weights = {f"backbone.model.{k}": v for k, v in state.items()}
        files = {p.name: file_sha256(p) for p in (hparams_file, weights_file)}
        source = {
            "toolkit": "speechbrain",
            "model": "ECAPA_TDNN",
            "path": str(self.path),
            "sha256": files,
        }
        return write_converted(output, config, weights, source, [hparams_file, weights_file])
