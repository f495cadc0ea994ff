"""Lightning callbacks of the platform."""

import lightning as L

from speakerid import __version__


class ConfigInCheckpoint(L.Callback):
    """Stores the run's resolved config in each checkpoint: a checkpoint alone rebuilds its model.

    Only plain containers are stored, so checkpoints load with ``torch.load(weights_only=True)``.
    """

    def __init__(self, config: dict) -> None:
        self.config = config

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict
    ) -> None:
        checkpoint["speakerid"] = {"config": self.config, "version": __version__}
