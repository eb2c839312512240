"""Remove what stand-ins left running, from any process: `sweep(leftovers)`.

The `Leftover`s come from `StandIn.leftovers()` or `StandIn.detach()` (see `standins.cleanup`),
usually through a ledger written by the process that started them (`rehearsal.ledger`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from standins.cleanup import Leftover, LeftProcess
from standins.netns import remove_namespace
from standins.sshd import end_user_processes

STOP_TIMEOUT = 15.0
"""Seconds a server gets to exit after its stop signal before SIGKILL."""
DIR_PREFIX = "handled-standins-"
"""Every stand-in's base dir is named `handled-standins-...`: no other directory is removed."""


def _stop(processes: Sequence[tuple[str, LeftProcess]], timeout: float) -> list[str]:
    """Signal each, wait for all, SIGKILL what is left; one line per process stopped."""
    signalled: list[tuple[str, LeftProcess]] = []
    for what, process in processes:
        if process.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, process.stop_signal)
                signalled.append((what, process))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(p.running() for _, p in signalled):
        time.sleep(0.1)
    lines = []
    for what, process in signalled:
        how = "stopped"
        if process.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            sent = signal.Signals(process.stop_signal).name
            how = f"killed (still running {timeout:.0f}s after {sent})"
        program = Path(process.command.split()[0]).name.rstrip(":") if process.command else "?"
        lines.append(f"{how} {what}: pid {process.pid} ({program})")
    return lines


def _remove(path: Path) -> str | None:
    """Remove a stand-in's base dir (only `handled-standins-*`) or a recorded file; what was
    done (None: already gone)."""
    if path.is_dir() and not path.is_symlink():
        if not path.name.startswith(DIR_PREFIX):
            return f"left {path}: not a stand-in's base dir"
        shutil.rmtree(path, ignore_errors=True)
        return f"removed {path}"
    if path.exists() or path.is_symlink():
        path.unlink()
        return f"removed {path}"
    return None


def sweep(leftovers: Sequence[Leftover], timeout: float = STOP_TIMEOUT) -> list[str]:
    """Stop and remove `leftovers`: every process of their deploy users (pm2, the app), then
    their servers, then their dirs and files, then their namespaces. One line per thing done;
    what is already gone is skipped."""
    lines: list[str] = []
    for user in dict.fromkeys(item.user for item in leftovers if item.user):
        pids = end_user_processes(user)
        if pids:
            lines.append(f"stopped {len(pids)} processes of {user} (pm2, the app): pids {pids}")
    lines += _stop([(item.what, p) for item in leftovers for p in item.processes], timeout)
    for item in leftovers:
        for path in item.paths:
            done = _remove(Path(path))
            if done:
                lines.append(f"{done} ({item.what})")
    for item in leftovers:
        if item.namespace and remove_namespace(item.namespace, item.link or ""):
            lines.append(f"removed {item.what} and its veth pair")
    return lines
