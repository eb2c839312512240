"""The window's durable record on the VPS, and the lock that keeps two runbooks apart.

In the deploy's state directory (0700):

``journal.jsonl``
    one line per event, appended and fsynced: which run, which step, ``start``, ``done`` or
    ``failed``, when, and the facts the step established (the source's write position at the
    freeze and at the copy's snapshot, the verify result and the positions it holds for, what
    ``.env`` was before, what the targets held at the cut-over...). Never rewritten.
``window.json``
    the current window's facts, the latest value of each (rewritten atomically after each
    event): what a later step or a re-run reads, then checks against the databases, rather
    than trusting.
``window.lock``
    which run holds the window, and which process on the VPS stands for it: the SSH session
    its pyinfra keeps open for the whole run. A run whose session is gone (pyinfra killed,
    connection lost) no longer holds it; a second runbook while the session lives is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deploy.remote.runtime import Context, Failure, atomic_write, private_dir, read_json, scrub

JOURNAL = "journal.jsonl"
STATE = "window.json"
LOCK = "window.lock"
_MUTEX = ".window.mutex"


def now() -> str:
    """The time now, UTC, to the second (ISO 8601)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ----- who stands for this run on the VPS ----------------------------------------------------


def _stat(pid: int) -> tuple[str, int, int] | None:
    """``(comm, ppid, start time)`` of ``pid`` from ``/proc``, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return comm, int(fields[1]), int(fields[19])


def session_owner() -> tuple[int, int]:
    """The process that stands for this run: the nearest ``sshd`` ancestor (the session
    pyinfra holds for its whole run), else the nearest ``pyinfra``, else our parent."""
    chain: list[tuple[int, str]] = []
    pid = os.getppid()
    while pid > 1 and len(chain) < 32:
        info = _stat(pid)
        if info is None:
            break
        chain.append((pid, info[0]))
        pid = info[1]
    for wanted in ("sshd", "pyinfra"):
        for candidate, comm in chain:
            if comm.startswith(wanted):
                started = _stat(candidate)
                return candidate, started[2] if started else 0
    parent = os.getppid()
    info = _stat(parent)
    return parent, info[2] if info else 0


def alive(pid: int, started: int, settle: float = 0.0) -> bool:
    """Whether ``pid`` still runs and is the same process (not a reused pid).

    An SSH session whose client has just gone takes a moment to end: with ``settle``, a
    process that ends within that many seconds counts as gone."""
    deadline = time.monotonic() + settle
    while True:
        info = _stat(pid)
        if info is None or info[2] != started:
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.1)


# ----- the journal --------------------------------------------------------------------------


class Journal:
    """The state directory's journal, window state and lock, for one action of one run."""

    def __init__(self, ctx: Context) -> None:
        self.dir = ctx.state_dir
        self.run = ctx.run
        self.runbook = ctx.runbook

    # ----- reading ---------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The current window's facts ({} before the first window)."""
        data = read_json(self.dir / STATE)
        return data if isinstance(data, dict) else {}

    def holder(self) -> dict[str, Any] | None:
        """The lock's record when another run holds it and its session still lives."""
        lock = read_json(self.dir / LOCK)
        if not isinstance(lock, dict) or lock.get("run") == self.run:
            return None
        if not alive(int(lock.get("pid", 0)), int(lock.get("started", -1)), settle=5.0):
            return None
        return lock

    def refuse_if_held(self) -> None:
        """Raise :class:`Failure` naming the other run when one holds the window."""
        other = self.holder()
        if other is not None:
            raise Failure(
                f"another {other.get('runbook', 'runbook')} is running on this VPS (run "
                f"{other.get('run')}, since {other.get('since')}, ssh session pid "
                f"{other.get('pid')}): wait for it to finish; if its operator is gone, end "
                "that session and run this again"
            )

    # ----- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _mutex(self) -> Iterator[None]:
        private_dir(self.dir)
        with (self.dir / _MUTEX).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def take(self) -> None:
        """Hold the window for this run (refused while another run's session lives)."""
        with self._mutex():
            self.refuse_if_held()
            old = read_json(self.dir / LOCK)
            pid, started = session_owner()
            if isinstance(old, dict) and old.get("run") == self.run:
                return
            record = {
                "run": self.run,
                "runbook": self.runbook,
                "pid": pid,
                "started": started,
                "since": now(),
            }
            atomic_write(self.dir / LOCK, json.dumps(record).encode())
            if isinstance(old, dict) and old.get("run"):
                self._append(
                    "lock", "note", {"took_over_from": old.get("run"), "its_session": "gone"}
                )

    def _append(self, step: str, event: str, facts: dict[str, Any]) -> None:
        line: dict[str, Any] = {"at": now(), "run": self.run, "runbook": self.runbook}
        line["step"] = step
        line |= {"event": event, "window": self.state().get("window"), **facts}
        fd = os.open(self.dir / JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(line, sort_keys=True, default=str) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def update(self, step: str, **facts: Any) -> dict[str, Any]:
        """Record facts of ``step`` in the journal and in the window state; return the state."""
        with self._mutex():
            state = self.state()
            state.update(facts)
            state["updated_at"] = now()
            atomic_write(self.dir / STATE, json.dumps(state, indent=2, default=str).encode())
            self._append(step, "facts", facts)
        return state

    def window(self) -> str:
        """The current window's id, opening a window when none is open (a window that was
        rolled back is closed first: the preflight refused already if its split needed a
        reset, so nothing of it is carried on)."""
        state = self.state()
        if state.get("window") and state.get("rolled_back"):
            self.close_window("window", reopened_after_rollback=True)
            state = {}
        if state.get("window"):
            return str(state["window"])
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        window = f"{stamp}-{secrets.token_hex(2)}"
        self.update("window", window=window, opened_at=now())
        return window

    def close_window(self, step: str, **facts: Any) -> None:
        """Archive the window state (``windows/<id>.json``) and start afresh."""
        with self._mutex():
            state = self.state()
            if state.get("window"):
                archive = private_dir(self.dir / "windows") / f"{state['window']}.json"
                state.update(facts, closed_at=now())
                atomic_write(archive, json.dumps(state, indent=2, default=str).encode())
            with contextlib.suppress(FileNotFoundError):
                (self.dir / STATE).unlink()
            self._append(step, "closed", {"closed": state.get("window"), **facts})

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[Journal]:
        """Hold the window and record ``name``'s start, then its end or its failure."""
        self.take()
        started = time.monotonic()
        self._append(name, "start", {})
        try:
            yield self
        except Failure as exc:
            self._append(name, "failed", {"error": str(exc)})
            raise
        except BaseException as exc:
            self._append(name, "failed", {"error": scrub(f"{type(exc).__name__}: {exc}")})
            raise
        self._append(name, "done", {"seconds": round(time.monotonic() - started, 2)})
