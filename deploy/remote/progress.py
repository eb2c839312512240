"""Progress lines of the VPS side's long steps (the backup's ``pg_dump``, uploads and downloads,
the restore's ``pg_restore``), printed as they run: the operation runs as a live command
(:class:`deploy.progress.Live`), so pyinfra shows each line when it comes.

A line reads ``progress <step>: <done> of <total> (<pct>%), <rate>, about <time> left``
(:class:`dbsplit.progress.Throughput`), at most every ``progress_seconds`` (the request's
``progress_every``), and once at the end. Like everything the VPS side prints, it goes through
:func:`~deploy.remote.runtime.say`, which scrubs it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from dbsplit.progress import Throughput
from deploy.remote.runtime import Context, say


class Meter:
    """A step's progress, printed when due."""

    def __init__(self, ctx: Context, step: str, total: float | None, *, approx: bool = False):
        self._meter = Throughput(step, total, every=ctx.progress_every, approx=approx)
        self._lock = threading.Lock()
        self._shown: float | None = None
        self.done = 0.0

    def due(self) -> bool:
        return self._meter.due()

    def update(self, done: float, *, force: bool = False, note: str = "") -> None:
        self.done = max(self.done, done)
        found = self._meter.report(self.done, force=force, note=note)
        if found:
            self._shown = self.done
            say(found)

    def add(self, amount: float) -> None:
        """Count ``amount`` more (boto3's transfer callback, from its threads)."""
        with self._lock:
            self.done += amount
            done = self.done
        self.update(done)

    def finish(self, note: str = "") -> None:
        """The last line: all of it done (unless the last line said so already)."""
        self._meter.total = self.done
        if self._shown != self.done:
            self.update(self.done, force=True, note=note)


class Ticker:
    """Calls ``tick`` every ``every`` seconds in a thread until stopped (a context manager):
    for a step whose work prints nothing while it runs (a big table in ``pg_dump``)."""

    def __init__(self, every: float, tick: Callable[[], None]) -> None:
        self._every, self._tick = max(every, 0.05), tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            self._tick()

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def read_position(pid: int, path: Path) -> int | None:
    """How far process ``pid`` has read the file ``path`` (its file descriptor's offset)."""
    target = str(path.resolve())
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as handle:
                    for line in handle:
                        if line.startswith("pos:"):
                            return int(line.split()[1])
    except OSError:
        return None
    return None
