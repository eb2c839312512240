"""Watch the window from outside: the source's read-only state and the app's health mode.

Every ``interval`` seconds, in a thread: is ``handled`` read-only (``default_transaction_read_only``
set on the database, read as the superuser over the server's Unix socket), and what does
``/api/health`` say (mode, and whether both databases are connected)? The rehearsal derives the
write-freeze window and the time to healthy after a rollback from these samples.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from standins.host import http_json
from standins.postgres import PostgresServer

FROZEN_SQL = (
    "SELECT coalesce(bool_or(s = 'default_transaction_read_only=on'), false) "
    "FROM pg_db_role_setting r, unnest(r.setconfig) s "
    "WHERE r.setdatabase = (SELECT oid FROM pg_database WHERE datname = %s)"
)


@dataclass(frozen=True)
class Sample:
    """One look: seconds since the rehearsal started, source frozen, health mode, healthy."""

    at: float
    frozen: bool | None
    mode: str | None
    healthy: bool


class StateSampler:
    """Sample the source and the app every ``interval`` seconds until stopped."""

    def __init__(
        self,
        source: PostgresServer,
        source_db: str,
        health_url: str,
        *,
        clock: Callable[[], float],
        interval: float = 0.2,
    ) -> None:
        self.source = source
        self.source_db = source_db
        self.health_url = health_url
        self.clock = clock
        self.interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="state-sampler", daemon=True)

    def start(self) -> StateSampler:
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.samples

    def _frozen(self) -> bool | None:
        try:
            with self.source.connect(self.source_db) as conn:
                row = conn.execute(FROZEN_SQL, [self.source_db]).fetchone()
        except Exception:  # the server may be restarting or gone: unknown
            return None
        return bool(row and row[0])

    def _health(self) -> tuple[str | None, bool]:
        try:
            body = http_json(self.health_url, timeout=2.0).body
        except Exception:
            return None, False
        if not isinstance(body, dict):
            return None, False
        dbs = body.get("databases") or {}
        connected = bool(dbs) and all(d.get("connected") for d in dbs.values())
        mode = body.get("mode")
        return (str(mode) if mode else None), body.get("status") == "ok" and connected

    def _run(self) -> None:
        while not self._stop.is_set():
            at = self.clock()
            frozen = self._frozen()
            mode, healthy = self._health()
            self.samples.append(Sample(at=at, frozen=frozen, mode=mode, healthy=healthy))
            self._stop.wait(self.interval)


def first(
    samples: list[Sample], after: float, test: Callable[[Sample], bool], before: float = 1e12
) -> float | None:
    """The time of the first sample in ``[after, before]`` passing ``test``, or None."""
    for sample in samples:
        if after <= sample.at <= before and test(sample):
            return sample.at
    return None
