"""Learning-rate schedules as factories ``(optimizer, total_steps) -> Lightning scheduler config``.

The system calls every schedule with the run's total optimizer steps, so step-level schedules
need no hand-computed lengths, and epoch-level torch schedulers are wrapped by :class:`PerEpoch`.
"""

import math
from collections.abc import Callable, Iterable

import lightning as L
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau

from speakerid.errors import ConfigError


class WarmupCosine:
    """Linear warm-up over ``warmup_fraction`` of training, then cosine decay to ``min_lr_ratio``.

    Example:
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> sched = WarmupCosine(warmup_fraction=0.1)(opt, total_steps=100)["scheduler"]
        >>> [round(f(s), 2) for f in sched.lr_lambdas for s in (0, 10, 100)]
        [0.1, 1.0, 0.01]
    """

    def __init__(self, warmup_fraction: float = 0.05, min_lr_ratio: float = 0.01) -> None:
        self.warmup_fraction = warmup_fraction
        self.min_lr_ratio = min_lr_ratio

    def __call__(self, optimizer: Optimizer, total_steps: int) -> dict:
        warmup = max(1, int(self.warmup_fraction * total_steps))
        floor = self.min_lr_ratio

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        return {"scheduler": LambdaLR(optimizer, factor), "interval": "step"}


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class ExponentialDecay:
    """WeSpeaker's ``ExponentialDecrease``: per step, the rate falls exponentially from
    ``initial_lr`` to ``final_lr`` over the run, times a warm-up coefficient that rises linearly
    from 0 (``warm_from_zero``) over the first ``warmup_epochs``; both scaled by
    ``world_size * batch_size / reference_batch`` (WeSpeaker's linear scaling rule, base 64).

    The rate is set outright (the optimizer's configured ``lr`` is ignored), as WeSpeaker does.
    ``epochs`` is the run's epoch count (``${trainer.max_epochs}``), so that warm-up epochs
    become steps.

    Example:
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> sched = ExponentialDecay(0.1, 0.001, warmup_epochs=1, epochs=10, batch_size=64)
        >>> f = sched(opt, total_steps=100)["scheduler"].lr_lambdas[0]
        >>> [round(f(s), 4) for s in (0, 5, 10, 100)]
        [0.0, 0.0397, 0.0631, 0.001]
    """

    def __init__(
        self,
        initial_lr: float = 0.1,
        final_lr: float = 5e-5,
        warmup_epochs: float = 6,
        warm_from_zero: bool = True,
        epochs: int = 150,
        batch_size: int = 64,
        reference_batch: int | None = 64,
    ) -> None:
        if not 0 < final_lr <= initial_lr:
            raise ConfigError(
                f"scheduler: need 0 < final_lr <= initial_lr, got {final_lr}, {initial_lr}"
            )
        self.initial_lr, self.final_lr = initial_lr, final_lr
        self.warmup_epochs, self.warm_from_zero = warmup_epochs, warm_from_zero
        self.epochs, self.batch_size, self.reference_batch = epochs, batch_size, reference_batch

    def scale_ratio(self) -> float:
        """WeSpeaker's ``world_size * batch_size / 64`` (1 without a reference batch)."""
        if not self.reference_batch:
            return 1.0
        return _world_size() * self.batch_size / self.reference_batch

    def __call__(self, optimizer: Optimizer, total_steps: int) -> dict:
        ratio = self.scale_ratio()
        warmup = self.warmup_epochs * total_steps / max(1, self.epochs)
        decay = math.log(self.final_lr / self.initial_lr)
        base = optimizer.param_groups[0]["lr"]

        def rate(step: int) -> float:
            coeff = ratio
            if step < warmup:
                if self.warm_from_zero:
                    coeff = ratio * step / warmup
                elif ratio > 1:
                    coeff = (ratio - 1) * step / warmup + 1.0
            return coeff * self.initial_lr * math.exp(step / total_steps * decay)

        return {"scheduler": LambdaLR(optimizer, lambda s: rate(s) / base), "interval": "step"}


class Cyclic:
    """SpeechBrain's ``CyclicLRScheduler`` (Smith 2017, triangular): the rate climbs linearly from
    ``base_lr`` to the optimizer's ``lr`` over ``step_size`` steps and back, cycle after cycle;
    ``triangular2`` halves the amplitude every cycle. As in SpeechBrain, the first step runs at
    the optimizer's configured rate (the scheduler moves the rate after each step).

    Example:
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
        >>> f = Cyclic(base_lr=0.0, step_size=10)(opt, total_steps=100)["scheduler"].lr_lambdas[0]
        >>> [round(f(s), 2) for s in (0, 1, 5, 10, 15, 20)]
        [1.0, 0.1, 0.5, 1.0, 0.5, 0.0]
    """

    def __init__(
        self, base_lr: float = 1e-8, step_size: int = 65000, mode: str = "triangular"
    ) -> None:
        if mode not in ("triangular", "triangular2"):
            raise ConfigError(f"scheduler.mode: triangular or triangular2, not {mode!r}")
        self.base_lr, self.step_size, self.mode = base_lr, step_size, mode

    def __call__(self, optimizer: Optimizer, total_steps: int) -> dict:
        del total_steps
        max_lr = optimizer.param_groups[0]["lr"]

        def factor(step: int) -> float:
            if step == 0:
                return 1.0
            cycle = math.floor(1 + step / (2 * self.step_size))
            x = abs(step / self.step_size - 2 * cycle + 1)
            scale = 1.0 if self.mode == "triangular" else 1 / 2.0 ** (cycle - 1)
            return (self.base_lr + (max_lr - self.base_lr) * max(0.0, 1 - x) * scale) / max_lr

        return {"scheduler": LambdaLR(optimizer, factor), "interval": "step"}


class InverseStepClip:
    """The GE2E project's rate: ``clip(1 / step, min_lr, max_lr)`` (steps counted from 1), as a
    factor of the optimizer's configured rate, which should be ``max_lr``.

    Example:
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
        >>> sched = InverseStepClip()(opt, total_steps=100)["scheduler"]
        >>> [round(f(s), 3) for f in sched.lr_lambdas for s in (0, 1999, 20000)]
        [1.0, 0.5, 0.1]
    """

    def __init__(self, max_lr: float = 1e-3, min_lr: float = 1e-4) -> None:
        self.max_lr, self.min_lr = max_lr, min_lr

    def __call__(self, optimizer: Optimizer, total_steps: int) -> dict:
        del total_steps

        def factor(step: int) -> float:
            return min(max(1.0 / (step + 1), self.min_lr), self.max_lr) / self.max_lr

        return {"scheduler": LambdaLR(optimizer, factor), "interval": "step"}


class OnPlateau:
    """ReduceLROnPlateau on a logged metric, checked after every validation (Hive-MTL)."""

    def __init__(
        self, monitor: str = "val/eer", mode: str = "min", factor: float = 0.5, patience: int = 2
    ) -> None:
        self.monitor, self.mode, self.factor, self.patience = monitor, mode, factor, patience

    def __call__(self, optimizer: Optimizer, total_steps: int) -> dict:
        del total_steps
        scheduler = ReduceLROnPlateau(
            optimizer, mode=self.mode, factor=self.factor, patience=self.patience
        )
        return {"scheduler": scheduler, "monitor": self.monitor, "interval": "epoch"}


class PerEpoch:
    """Any torch scheduler stepped once per epoch, e.g. ``StepLR`` or ``ExponentialLR``."""

    def __init__(self, scheduler: Callable[[Optimizer], LRScheduler]) -> None:
        self.scheduler = scheduler

    def __call__(self, optimizer: Optimizer, total_steps: int) -> dict:
        del total_steps  # epoch schedulers are configured in epochs
        return {"scheduler": self.scheduler(optimizer), "interval": "epoch"}


def configure_optimizers(
    params: Iterable[nn.Parameter],
    optimizer: Callable[[Iterable[nn.Parameter]], Optimizer],
    scheduler: Callable[[Optimizer, int], dict] | None,
    trainer: L.Trainer,
) -> dict:
    """What a system's ``configure_optimizers`` returns: the optimizer over ``params``, and the
    schedule sized by the trainer's total steps."""
    built = optimizer(params)
    if scheduler is None:
        return {"optimizer": built}
    return {
        "optimizer": built,
        "lr_scheduler": scheduler(built, int(trainer.estimated_stepping_batches)),
    }
