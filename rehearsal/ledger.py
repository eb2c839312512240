"""What a rehearsal left running, so the next one can sweep it (after --keep or a kill).

The ledger (``/run/handled-rehearsal/ledger.json``, 0600) lists the server processes (pid and
the program name they must still have) and the VPS's network namespace. ``sweep()`` stops the
listed processes that are still those programs, and removes namespaces whose owner is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from standins.netns import remove_stale_namespaces

LEDGER = Path("/run/handled-rehearsal/ledger.json")
PROGRAMS = ("postgres", "pgbouncer", "moto", "sshd")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def pids_of(things: list[Any]) -> list[int]:
    """The server pids of stand-ins (``pid`` attribute or a ``_process``)."""
    pids: list[int] = []
    for thing in things:
        for candidate in (thing, getattr(thing, "server", None), getattr(thing, "bouncer", None)):
            if candidate is None:
                continue
            pid: Any = None
            with contextlib.suppress(Exception):
                pid = candidate.pid
            if not isinstance(pid, int):
                process = getattr(candidate, "_process", None)
                pid = getattr(process, "pid", None)
            if isinstance(pid, int) and pid not in pids:
                pids.append(pid)
    return pids


def record(pids: list[int], namespace: str | None, info: dict[str, Any] | None = None) -> None:
    """Write the ledger (replacing any)."""
    LEDGER.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    entries = [{"pid": p, "cmd": _cmdline(p)[:200]} for p in pids]
    data = {"owner": os.getpid(), "processes": entries, "namespace": namespace, "info": info or {}}
    fd = os.open(LEDGER, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle)


def clear() -> None:
    with contextlib.suppress(FileNotFoundError):
        LEDGER.unlink()


def sweep() -> list[str]:
    """Stop what an earlier rehearsal left; returns one line per thing stopped."""
    done: list[str] = []
    try:
        data = json.loads(LEDGER.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    owner = int(data.get("owner", 0))
    if owner and owner != os.getpid() and _cmdline(owner):
        raise RuntimeError(f"another rehearsal (pid {owner}) is running: let it finish first")
    alive: list[int] = []
    for entry in data.get("processes", []):
        pid, cmd = int(entry.get("pid", 0)), str(entry.get("cmd", ""))
        now = _cmdline(pid)
        if pid > 1 and now and now == cmd and any(p in now for p in PROGRAMS):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                alive.append(pid)
                done.append(f"stopped pid {pid} ({now.split()[0]})")
    deadline = time.monotonic() + 10
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _cmdline(p)]
        time.sleep(0.2)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    done += [f"removed namespace {name}" for name in remove_stale_namespaces()]
    clear()
    return done
