"""Progress and timing of the long steps of a backup or restore (rich, on stderr)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Steps:
    """Times each step; with a console, shows a spinner or a bar and prints the time."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, key: str, label: str, total: int | None = None
             ) -> Iterator[Callable[[int], None]]:
        """Run one step; the caller advances the bar with the yielded function."""
        start = time.perf_counter()
        if self.console is None or not self.console.is_terminal:
            yield lambda _n=1: None
        else:
            columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn()] if total else [TextColumn("{task.description}"),
                                                           TimeElapsedColumn()]
            with Progress(*columns, console=self.console, transient=True) as bar:
                task = bar.add_task(label, total=total)
                yield lambda n=1: bar.advance(task, n)
        self.timings[key] = round(time.perf_counter() - start, 3)
        if self.console is not None:
            self.console.print(f"✓ {label}: {self.timings[key]:.2f} s")

    def say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text)
