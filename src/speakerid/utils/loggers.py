"""Ending logger runs: W&B keeps one global run per process, so a second run in the same process
(a Hydra multirun with the basic launcher, a test session) would silently log into the first."""

from collections.abc import Sequence

from lightning.pytorch.loggers import Logger, WandbLogger


def close_loggers(loggers: Sequence[Logger]) -> None:
    """Flush every logger and finish the W&B runs they opened."""
    for logger in loggers:
        logger.save()
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger._experiment.finish()
