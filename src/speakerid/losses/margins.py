"""Margin softmax heads beside AAM: additive margin (CosFace / AM-softmax), and the margin
warm-up callback for margin heads."""

import lightning as L
from speechbrain.nnet.losses import AngularMargin

from speakerid.contracts import MarginHead
from speakerid.losses.aam_softmax import MarginSoftmax


class AmSoftmax(MarginSoftmax):
    """Additive margin softmax: cross-entropy over ``scale * (cos(theta) - margin)`` for the true
    class (Wang et al., "Additive Margin Softmax for Face Verification", 2018), with speechbrain's
    margin function. Logits are the scaled cosines without margin.

    Example:
        >>> head = AmSoftmax(embed_dim=16, num_speakers=4)
        >>> head(torch.randn(8, 16), torch.randint(0, 4, (8,))).logits.shape
        torch.Size([8, 4])
    """

    def __init__(
        self, embed_dim: int, num_speakers: int, margin: float = 0.2, scale: float = 30.0
    ) -> None:
        super().__init__(embed_dim, num_speakers, margin, scale)

    def set_margin(self, margin: float) -> None:
        self.margin = margin
        self.margin_fn = AngularMargin(margin=margin, scale=self.scale)


class MarginWarmup(L.Callback):
    """Raises a margin head's margin linearly from ``start`` to its configured value over the
    first ``steps`` optimizer steps (AAM/AM-softmax converge badly from a full margin).

    The margin is a function of the global step, set before every training batch, so a resumed
    run continues the ramp exactly where it stopped; the checkpoint also records it.
    """

    def __init__(self, steps: int = 2000, start: float = 0.0) -> None:
        self.steps = steps
        self.start = start
        self.target: float | None = None

    def margin_at(self, step: int) -> float:
        if self.target is None:
            raise RuntimeError("MarginWarmup has not seen its head yet")
        if step >= self.steps:
            return self.target
        return self.start + (self.target - self.start) * step / self.steps

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        head = pl_module.loss
        if not isinstance(head, MarginHead):
            name = type(head).__name__
            raise TypeError(f"MarginWarmup needs a margin head (AamSoftmax, AmSoftmax), not {name}")
        if self.target is None:
            self.target = float(head.margin)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        pl_module.loss.set_margin(self.margin_at(trainer.global_step))

    def state_dict(self) -> dict:
        return {"target": self.target}

    def load_state_dict(self, state: dict) -> None:
        self.target = state.get("target")
