"""Progress: rich bars on a terminal, plain log lines otherwise (both on stderr).

The log lines of a long copy carry one mark, ``progress <step>:``, every
``DBSPLIT_PROGRESS_SECONDS`` (default 10) and at the end: what is done of the estimate, the
rate and the time left (:class:`Throughput`, standard library only: the deploy's VPS side
prints its own progress lines with it).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

PROGRESS_SECONDS = "DBSPLIT_PROGRESS_SECONDS"


def human_bytes(n: float) -> str:
    """``n`` bytes as ``512 B``, ``1.5 KiB``, ``41.0 MiB``, ``1.20 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            if unit == "B":
                return f"{n:.0f} B"
            return f"{n:.2f} {unit}" if unit == "GiB" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"  # pragma: no cover - the loop returns


def human_seconds(seconds: float) -> str:
    """``seconds`` as ``45s``, ``3m05s``, ``1h02m``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s // 60 % 60:02d}m"


class Throughput:
    """``progress <step>: <done> of <total> (<pct>%), <rate>, about <time> left``.

    ``total`` may be an estimate (``approx``: shown as ``~``) or unknown (None: no percentage,
    no time left). :meth:`report` returns the line when ``every`` seconds passed since the last
    one (or when forced), else None. Thread-safe.
    """

    def __init__(
        self,
        step: str,
        total: float | None,
        *,
        unit: str = "bytes",
        every: float = 10.0,
        approx: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.step, self.total, self.unit, self.every = step, total, unit, every
        self.approx = approx
        self._clock = clock
        self._t0 = clock()
        self._last: float | None = None
        self._lock = threading.Lock()

    def _amount(self, n: float) -> str:
        return human_bytes(n) if self.unit == "bytes" else f"{n:,.0f} {self.unit}"

    def line(self, done: float, note: str = "") -> str:
        elapsed = max(self._clock() - self._t0, 1e-6)
        rate = done / elapsed
        text = f"progress {self.step}: {self._amount(done)}"
        if self.total:
            total = max(self.total, done)
            text += f" of {'~' if self.approx else ''}{self._amount(total)}"
            text += f" ({min(100, int(100 * done / total))}%)"
        per = f"{human_bytes(rate)}/s" if self.unit == "bytes" else f"{rate:,.0f} {self.unit}/s"
        text += f", {per}"
        if self.total and rate > 0:
            text += f", about {human_seconds(max(self.total - done, 0) / rate)} left"
        return text + (f"; {note}" if note else "")

    def due(self) -> bool:
        return self._last is None or self._clock() - self._last >= self.every

    def report(self, done: float, *, force: bool = False, note: str = "") -> str | None:
        with self._lock:
            if not force and not self.due():
                return None
            self._last = self._clock()
            return self.line(done, note)


def progress_seconds(default: float = 10.0) -> float:
    """How often a long step prints its progress (``DBSPLIT_PROGRESS_SECONDS``)."""
    try:
        return float(os.environ.get(PROGRESS_SECONDS) or default)
    except ValueError:
        return default


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
        self._bytes = 0
        self._meter: Throughput | None = None

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
        self._bytes = 0
        estimate = sum(b for _, b in tables.values())
        self._meter = Throughput("copy", estimate, every=progress_seconds(), approx=True)

    def part_done(self, qualname: str, part: int, parts: int, rows: int, nbytes: int) -> None:
        self._done += 1
        self._bytes += nbytes
        self._line(
            f"copied {qualname} part {part + 1}/{parts}: {rows} rows, {nbytes} bytes"
            f" ({self._done}/{self._total})"
        )
        self._progress(force=False)

    def _progress(self, *, force: bool) -> None:
        if self._meter is not None:
            found = self._meter.report(
                self._bytes, force=force, note=f"{self._done} of {self._total} table parts"
            )
            if found:
                self._line(found)

    def end_copy(self) -> None:
        if self._meter is not None and self._meter.total is not None:
            self._meter.total = self._bytes  # the estimate was the tables' size on disk
        self._progress(force=True)


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
