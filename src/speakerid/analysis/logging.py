"""Send an evaluation report to Lightning loggers: numbers to every logger, PNGs and a table to
those that show them (TensorBoard images; W&B images and a table)."""

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger
from PIL import Image


def flatten(report: Mapping, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested report as ``a/b/c`` keys (strings and lists left out)."""
    flat: dict[str, float] = {}
    for key, value in report.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def log_report(
    loggers: Sequence[Logger], report: Mapping, images: Mapping[str, Path], prefix: str = "eval"
) -> None:
    """Log the report's numbers, its PNG files and (W&B) a metric table."""
    numbers = flatten(report, f"{prefix}/")
    for logger in loggers:
        logger.log_metrics(numbers)
        if isinstance(logger, TensorBoardLogger):
            for name, path in images.items():
                pixels = np.asarray(Image.open(path).convert("RGB"))
                logger.experiment.add_image(f"{prefix}/{name}", pixels, dataformats="HWC")
        elif isinstance(logger, WandbLogger):
            if images:
                for name, path in images.items():
                    logger.log_image(key=f"{prefix}/{name}", images=[str(path)])
            logger.log_table(
                key=f"{prefix}/table",
                columns=["metric", "value"],
                data=[[k, v] for k, v in numbers.items()],
            )
