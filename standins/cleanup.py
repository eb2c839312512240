"""Stop every running stand-in when the interpreter exits, even after an interrupted session;
or leave one running on purpose (`StandIn.detach`), described as `Leftover`s for a later
process to remove (`standins.leftovers.sweep`)."""

from __future__ import annotations

import atexit
import contextlib
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self


class Stoppable(Protocol):
    """Anything with an idempotent `stop()`."""

    def stop(self) -> None: ...


def cmdline(pid: int) -> str:
    """Process `pid`'s command line, space-joined ("" when it is gone or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")


def started(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, /proc/PID/stat), None when it is
    gone or a zombie: with the pid, it names one process for good (pids are recycled)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # from field 3 (state) on
    return None if fields[0] in ("Z", "X") else int(fields[19])


@dataclass(frozen=True)
class LeftProcess:
    """A server process another process may stop: only while pid and start time still match
    (`command` is for people: servers such as sshd retitle themselves)."""

    pid: int
    started: int
    command: str
    stop_signal: int = signal.SIGTERM

    @classmethod
    def of(cls, pid: int, stop_signal: int = signal.SIGTERM) -> LeftProcess | None:
        """Process `pid` as it runs now, or None when it does not run."""
        start = started(pid)
        return None if start is None else cls(pid, start, cmdline(pid), int(stop_signal))

    def running(self) -> bool:
        """Whether this very process still runs (not a recycled pid, not a zombie)."""
        return self.pid > 1 and started(self.pid) == self.started


@dataclass(frozen=True)
class Leftover:
    """What one stand-in leaves behind when this process goes (detached, or killed), and what
    `standins.leftovers.sweep` then does, in this order: every process of `user` (a deploy user
    made by `standins.sshd`: its pm2 daemon and apps), `processes`, `paths` (temp dirs, files),
    then the network namespace `namespace` with its veth `link`."""

    what: str
    processes: tuple[LeftProcess, ...] = ()
    paths: tuple[str, ...] = ()
    user: str | None = None
    namespace: str | None = None
    link: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (`from_json` reads it back)."""
        return {
            "what": self.what,
            "processes": [[p.pid, p.started, p.command, p.stop_signal] for p in self.processes],
            "paths": list(self.paths),
            "user": self.user,
            "namespace": self.namespace,
            "link": self.link,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Leftover:
        return cls(
            what=str(data["what"]),
            processes=tuple(
                LeftProcess(int(p), int(t), str(c), int(s)) for p, t, c, s in data["processes"]
            ),
            paths=tuple(str(p) for p in data["paths"]),
            user=data.get("user"),
            namespace=data.get("namespace"),
            link=data.get("link"),
        )


def processes(pids: list[int], stop_signal: int = signal.SIGTERM) -> tuple[LeftProcess, ...]:
    """`LeftProcess`es of those of `pids` that run now."""
    found = (LeftProcess.of(pid, stop_signal) for pid in pids)
    return tuple(p for p in found if p is not None)


class StandIn:
    """A running stand-in; as a context manager, leaving the block stops it.

    Subclasses put their shutdown in `_shutdown`: `stop` runs it once and forgets the stand-in,
    so that `stop_all` does not stop it again. `leftovers()` describes what would be left if
    this process died now; `detach()` leaves it running for good.
    """

    _stopped: bool = False

    def stop(self) -> None:
        """Stop it; idempotent (and a no-op once detached)."""
        if self._stopped:
            return
        self._stopped = True
        untrack(self)
        self._shutdown()

    def detach(self) -> list[Leftover]:
        """Leave it running after this process exits, its files on disk; return what a later
        process needs to stop it and remove its files (`standins.leftovers.sweep`).

        It is forgotten here: `stop_all` at exit no longer stops it and `stop()` does nothing.
        """
        if self._stopped:
            raise RuntimeError(f"{self!r} is already stopped or detached")
        self._stopped = True
        untrack(self)
        self._detach()
        return self.leftovers()

    def leftovers(self) -> list[Leftover]:
        """Its processes, files (and user, namespace) as `Leftover`s."""
        raise NotImplementedError

    def _shutdown(self) -> None:
        raise NotImplementedError

    def _detach(self) -> None:
        """Hand over whatever would otherwise end with this process (parts, locks)."""

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
    """Forget a stand-in that has been stopped (or detached)."""
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
