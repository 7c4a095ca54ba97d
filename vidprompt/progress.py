"""Rich progress bars on stderr (results own stdout)."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

stderr_console = Console(stderr=True)


@contextlib.contextmanager
def progress_bar(total: int | None, description: str, enabled: bool = True,
                 unit: str = "videos") -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; draws a bar with rate and ETA on stderr when enabled."""
    if not enabled:
        yield lambda n=1: None
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"),
               TimeRemainingColumn())
    with Progress(*columns, console=stderr_console, transient=False) as progress:
        task = progress.add_task(description, total=total, rate="")

        def advance(n: int = 1) -> None:
            progress.advance(task, n)
            speed = progress.tasks[task].speed
            if speed:
                progress.update(task, rate=f"{speed:.2f} {unit}/s")

        yield advance
