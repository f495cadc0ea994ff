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
