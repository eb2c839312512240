"""Progress: rich bars on a terminal, plain log lines otherwise (both on stderr)."""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO


class Progress(Protocol):
    """What the orchestrator tells the user while it works."""

    def step(self, message: str) -> None: ...

    def start_copy(self, tables: dict[str, tuple[int, int]]) -> None:
        """``tables``: ``{qualname: (parts to copy, estimated bytes)}``."""

    def part_done(self, qualname: str, part: int, parts: int, rows: int, nbytes: int) -> None: ...

    def end_copy(self) -> None: ...

    def info(self, message: str) -> None: ...


class LogProgress:
    """One line per event, for logs and pipes."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._t0 = time.monotonic()
        self._done = 0
        self._total = 0

    def _line(self, text: str) -> None:
        print(
            f"dbsplit: [{time.monotonic() - self._t0:7.1f}s] {text}", file=self.stream, flush=True
        )

    def step(self, message: str) -> None:
        self._line(message)

    def info(self, message: str) -> None:
        self._line(message)

    def start_copy(self, tables: dict[str, tuple[int, int]]) -> None:
        self._total = sum(n for n, _ in tables.values())
        self._done = 0

    def part_done(self, qualname: str, part: int, parts: int, rows: int, nbytes: int) -> None:
        self._done += 1
        self._line(
            f"copied {qualname} part {part + 1}/{parts}: {rows} rows, {nbytes} bytes"
            f" ({self._done}/{self._total})"
        )

    def end_copy(self) -> None:
        pass


class RichProgress:
    """A bar per table and one overall, on a terminal."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as Bars

        self.console = Console(stderr=True)
        self._bars = Bars(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._tasks: dict[str, Any] = {}
        self._overall: Any = None

    def step(self, message: str) -> None:
        self.console.print(f"[bold]{message}[/bold]")

    def info(self, message: str) -> None:
        self.console.print(message)

    def start_copy(self, tables: dict[str, tuple[int, int]]) -> None:
        total = sum(b for _, b in tables.values())
        self._bars.start()
        self._overall = self._bars.add_task("overall", total=total or 1)
        for name, (_, nbytes) in sorted(tables.items(), key=lambda kv: -kv[1][1]):
            self._tasks[name] = self._bars.add_task(name, total=nbytes or 1)
        self._est = {name: nbytes for name, (_, nbytes) in tables.items()}
        self._parts = {name: n for name, (n, _) in tables.items()}

    def part_done(self, qualname: str, part: int, parts: int, rows: int, nbytes: int) -> None:
        task = self._tasks.get(qualname)
        share = self._est.get(qualname, 0) / max(self._parts.get(qualname, 1), 1)
        if task is not None:
            self._bars.advance(task, share)
        self._bars.advance(self._overall, share)

    def end_copy(self) -> None:
        self._bars.stop()


def make_progress(stream: TextIO | None = None) -> Progress:
    """Rich bars when stderr is a terminal, log lines otherwise."""
    target = stream or sys.stderr
    if target.isatty():
        return RichProgress()
    return LogProgress(target)
