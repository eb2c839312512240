"""Stop every running stand-in when the interpreter exits, even after an interrupted session."""

from __future__ import annotations

import atexit
import contextlib
import threading
from types import TracebackType
from typing import Protocol, Self


class Stoppable(Protocol):
    """Anything with an idempotent `stop()`."""

    def stop(self) -> None: ...


class StandIn:
    """A running stand-in; as a context manager, leaving the block stops it.

    Subclasses put their shutdown in `_shutdown`: `stop` runs it once and forgets the stand-in,
    so that `stop_all` does not stop it again.
    """

    _stopped: bool = False

    def stop(self) -> None:
        """Stop it; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        untrack(self)
        self._shutdown()

    def _shutdown(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


_lock = threading.Lock()
_running: list[Stoppable] = []


def track(thing: Stoppable) -> None:
    """Remember a running stand-in so `stop_all` (run at exit) stops it."""
    with _lock:
        _running.append(thing)


def untrack(thing: Stoppable) -> None:
    """Forget a stand-in that has been stopped."""
    with _lock:
        _running[:] = [other for other in _running if other is not thing]


def stop_all() -> None:
    """Stop every tracked stand-in, newest first; errors are ignored so all get a chance."""
    with _lock:
        things = list(reversed(_running))
    for thing in things:
        with contextlib.suppress(Exception):  # best effort at exit: every stand-in gets a try
            thing.stop()


atexit.register(stop_all)
