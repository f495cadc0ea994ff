"""Learning-rate schedules as factories ``(optimizer, total_steps) -> Lightning scheduler config``.

The system calls every schedule with the run's total optimizer steps, so step-level schedules
need no hand-computed lengths, and epoch-level torch schedulers are wrapped by :class:`PerEpoch`.
"""

import math
from collections.abc import Callable, Iterable

import lightning as L
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler


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


class PerEpoch:
    """Any torch scheduler stepped once per epoch, e.g. ``StepLR`` or ``ExponentialLR``."""

    def __init__(self, scheduler: Callable[[Optimizer], LRScheduler]) -> None:
        self.scheduler = scheduler

    def __call__(self, optimizer: Optimizer, total_steps: int) -> dict:
        del total_steps  # epoch schedulers are configured in epochs
        return {"scheduler": self.scheduler(optimizer), "interval": "epoch"}


def configure_optimizers(
    module: L.LightningModule,
    optimizer: Callable[[Iterable[nn.Parameter]], Optimizer],
    scheduler: Callable[[Optimizer, int], dict] | None,
) -> dict:
    """What a system's ``configure_optimizers`` returns: the optimizer over all its parameters,
    and the schedule sized by the trainer's total steps."""
    built = optimizer(module.parameters())
    if scheduler is None:
        return {"optimizer": built}
    return {
        "optimizer": built,
        "lr_scheduler": scheduler(built, int(module.trainer.estimated_stepping_batches)),
    }
