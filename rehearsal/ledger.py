"""What a rehearsal left running, so that `--stop` or the next run sweeps it (after --keep or a
kill).

The ledger (``/run/handled-rehearsal/ledger.json``, 0600) lists the stand-ins' `Leftover`s
(server processes with the command line they must still have, temp dirs, the deploy user whose
pm2 and app must go, the VPS's network namespace, the env files of a kept world) and, while the
rehearsal runs, its own pid. ``sweep()`` removes them all (``standins.leftovers.sweep``), then
namespaces of dead runs.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from standins.cleanup import Leftover, started
from standins.leftovers import sweep as sweep_leftovers
from standins.netns import remove_stale_namespaces

LEDGER = Path("/run/handled-rehearsal/ledger.json")


def record(
    leftovers: list[Leftover], *, kept: bool = False, info: dict[str, Any] | None = None
) -> None:
    """Write the ledger (replacing any). A kept world has no owner (0): nothing runs it."""
    LEDGER.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = {
        "owner": 0 if kept else os.getpid(),
        "owner_started": None if kept else started(os.getpid()),
        "kept": kept,
        "leftovers": [item.to_json() for item in leftovers],
        "info": info or {},
    }
    fd = os.open(LEDGER, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)


def read() -> dict[str, Any]:
    """The ledger's contents ({} when there is none)."""
    try:
        data = json.loads(LEDGER.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def clear() -> None:
    with contextlib.suppress(FileNotFoundError):
        LEDGER.unlink()


def sweep() -> list[str]:
    """Stop what an earlier rehearsal left; returns one line per thing stopped or removed.

    Raises RuntimeError, changing nothing, while the rehearsal that wrote the ledger runs.
    """
    data = read()
    pid = int(data.get("owner") or 0)
    if pid and pid != os.getpid() and started(pid) == data.get("owner_started"):
        raise RuntimeError(f"another rehearsal (pid {pid}) is running: let it finish first")
    leftovers = [Leftover.from_json(item) for item in data.get("leftovers", [])]
    done = sweep_leftovers(leftovers)
    done += [
        f"removed network namespace {name} (of a dead run)" for name in remove_stale_namespaces()
    ]
    clear()
    return done
