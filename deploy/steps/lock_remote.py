"""Remote side of the lock step: who else holds the window on this VPS."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deploy.remote.journal import Journal
from deploy.remote.runtime import Context


@dataclass(frozen=True)
class LockQuery:
    """Nothing to ask: the request's run id says who is asking."""


@dataclass(frozen=True)
class LockState:
    """``other``: the lock of another run whose session still lives, else {}; ``finalized``:
    the journal's record once the window is finalized (``deploy/finalize.py``), else {}."""

    other: dict[str, Any] = field(default_factory=dict)
    window: str | None = None
    finalized: dict[str, Any] = field(default_factory=dict)


def held(req: LockQuery, ctx: Context) -> LockState:
    journal = Journal(ctx)
    state = journal.state()
    return LockState(journal.holder() or {}, state.get("window"), state.get("finalized") or {})
