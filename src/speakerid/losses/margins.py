"""Margin softmax heads beside AAM: additive margin (CosFace / AM-softmax), and the margin
warm-up callback for margin heads."""

import math

import lightning as L
from speechbrain.nnet.losses import AngularMargin

from speakerid.contracts import MarginHead
from speakerid.errors import ConfigError
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


class MarginSchedule(L.Callback):
    """WeSpeaker's ``MarginScheduler``, by epochs: the margin is ``initial`` until epoch
    ``increase_start_epoch``, rises to the head's configured margin by ``fix_start_epoch``
    (epochs counted from 1, as there), then stays. ``increase_type="exp"`` rises fast first:
    ``1 - exp(t * ln(1e-3))`` of the way at fraction ``t`` of the rise (WeSpeaker's curve);
    ``linear`` evenly. Set per optimizer step from the global step, so a resumed run continues
    exactly where it stopped.

    Example (WeSpeaker's VoxCeleb recipe, 0 -> 0.2 between epochs 20 and 40):
        >>> m = MarginSchedule(0.0, increase_start_epoch=20, fix_start_epoch=40, final=0.2)
        >>> [round(m.margin_at(epoch=e), 3) for e in (0, 19, 24, 29, 39, 60)]
        [0.0, 0.0, 0.164, 0.194, 0.2, 0.2]
    """

    def __init__(
        self,
        initial: float = 0.0,
        increase_start_epoch: int = 20,
        fix_start_epoch: int = 40,
        increase_type: str = "exp",
        final: float | None = None,
    ) -> None:
        if increase_type not in ("exp", "linear"):
            raise ConfigError(
                f"callbacks.margin_schedule.increase_type: exp or linear, not {increase_type!r}"
            )
        if fix_start_epoch < increase_start_epoch:
            raise ConfigError(
                "callbacks.margin_schedule: fix_start_epoch must not come before "
                "increase_start_epoch"
            )
        self.initial = initial
        self.increase_start_epoch = increase_start_epoch
        self.fix_start_epoch = fix_start_epoch
        self.increase_type = increase_type
        self.final = final  # None: the head's configured margin, read when fitting starts
        self._steps_per_epoch = 1.0

    def margin_at(self, epoch: float) -> float:
        """The margin after ``epoch`` (fractional) completed epochs."""
        if self.final is None:
            raise RuntimeError("MarginSchedule has not seen its head yet")
        start, fix = self.increase_start_epoch - 1, self.fix_start_epoch - 1
        if epoch >= fix:
            return self.final
        if epoch < start:
            return self.initial
        t = (epoch - start) / (fix - start)
        if self.increase_type == "exp":
            t = 1.0 - math.exp(t * math.log(1e-3 / (1.0 + 1e-6)))
        return self.initial + (self.final - self.initial) * t

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        head = pl_module.loss
        if not isinstance(head, MarginHead):
            name = type(head).__name__
            raise TypeError(
                f"MarginSchedule needs a margin head (AamSoftmax, AmSoftmax), not {name}"
            )
        if self.final is None:
            self.final = float(head.margin)
        if trainer.max_epochs is None or trainer.max_epochs < 1:
            raise ConfigError("callbacks.margin_schedule counts epochs: set trainer.max_epochs")
        self._steps_per_epoch = max(1.0, trainer.estimated_stepping_batches / trainer.max_epochs)
        self._follow(trainer, pl_module)  # the schedule's margin from the start (init_margin)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._follow(trainer, pl_module)

    def _follow(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Give the head the margin of the trainer's step; set only on a change (most steps
        keep it), as the head rebuilds its margin constants on every set."""
        margin = self.margin_at(trainer.global_step / self._steps_per_epoch)
        if margin != pl_module.loss.margin:
            pl_module.loss.set_margin(margin)

    def state_dict(self) -> dict:
        return {"final": self.final}

    def load_state_dict(self, state: dict) -> None:
        self.final = state.get("final", self.final)
