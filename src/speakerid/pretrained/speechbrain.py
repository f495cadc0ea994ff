"""Public pretrained encoders as embedding sources: speechbrain-format model folders.

A speechbrain model folder (``hyperparams.yaml`` + ``embedding_model.ckpt`` and friends, e.g. a
copy of ``speechbrain/spkrec-ecapa-voxceleb``) is loaded from local disk only — never downloaded —
and wrapped as ``(wav (B,S), lengths (B,)) -> (B,D)`` like our own systems.
"""

from pathlib import Path

import torch
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
