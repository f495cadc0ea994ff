"""Rich progress bars for long loops outside the Lightning trainer."""

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

T = TypeVar("T")


def progress_bar(items: Iterable[T], total: int, description: str) -> Iterator[T]:
    """Yield ``items`` while drawing a progress bar (plain, and quiet, when not on a terminal)."""
    if not sys.stderr.isatty() or os.environ.get("CI"):
        yield from items
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)
