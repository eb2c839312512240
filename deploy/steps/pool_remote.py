"""Remote side of Phase 2's pool burst: prepared-statement queries through PgBouncer, from the
VPS, the way the app's Prisma client sends them under the stack's ``prismaPgbouncer``.

Runs in the dbsplit virtualenv (:mod:`deploy.steps.tooling`), whose psycopg gives the
protocol-level control this needs (``PGconn.prepare``/``exec_prepared``); Python 3.10+.

Each of ``clients`` concurrent connections (more than the pool has servers) runs
``transactions`` transactions of :data:`QUERIES`, each a named server-side prepared statement:

- ``pgbouncer=true``, Prisma's PgBouncer mode (prisma-engines, quaint's PostgreSQL connector:
  a statement cache of size 0 and ``server_reset_query`` = ``DEALLOCATE ALL``): every
  transaction starts with ``DEALLOCATE ALL``, then prepares each statement afresh under a new
  name (``s0``, ``s1``... per connection) and executes it. PgBouncer before 1.21 passes all of
  it to one server inside the transaction: it works. PgBouncer 1.21+ with
  ``max_prepared_statements`` > 0 renames named statements (``PGBOUNCER_n``) and keeps them per
  server, and ``DEALLOCATE ALL`` frees them behind its back: ``prepared statement
  "PGBOUNCER_n" does not exist`` (prisma/prisma#21635; #21877 on DigitalOcean's pool).
- ``pgbouncer=false``, Prisma's default: each statement prepared once per connection, under its
  name, and executed again in every later transaction. PgBouncer before 1.21 (or
  ``max_prepared_statements`` = 0) sends a later transaction to whichever server is free, which
  does not know the name (``26000 ... does not exist``) or has another client's statement of
  that name (``42P05 ... already exists``); 1.21+ with ``max_prepared_statements`` > 0 carries
  them across.

The result counts every query and error (by SQLSTATE) and the latency of the queries that
answered; the operation judges it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from deploy.remote.runtime import Context, Failure, scrub

#: (SQL, one parameter): read-only, touching only the catalog; the last holds the server
#: connection for ``hold_ms`` so that more clients than servers really wait for one.
QUERIES: tuple[tuple[bytes, bytes | None], ...] = (
    (b"SELECT $1::int + 1", b"41"),
    (b"SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname <> $1", b"pg_toast"),
    (b"SELECT pg_catalog.pg_sleep($1::float8 / 1000)", None),
)
#: SQLSTATEs of a prepared statement the server does not have, or has from someone else.
STATEMENT_ERRORS = ("26000", "42P05")


@dataclass(frozen=True)
class Burst:
    pgbouncer: bool
    clients: int
    transactions: int
    hold_ms: int = 5


@dataclass(frozen=True)
class BurstResult:
    clients: int = 0
    transactions: int = 0
    queries: int = 0
    answered: int = 0
    errors: int = 0
    sqlstates: dict[str, int] = field(default_factory=dict)
    first_error: str = ""
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    seconds: float = 0.0


class _Client:
    """One connection running its transactions; what it saw goes into ``tally``."""

    def __init__(self, req: Burst, tally: _Tally) -> None:
        self.req = req
        self.tally = tally
        self.names: dict[bytes, bytes] = {}  # pgbouncer=false: SQL -> its prepared name
        self.counter = 0

    def run(self, start: threading.Barrier) -> None:
        import psycopg

        try:
            conn = psycopg.connect(autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            self.tally.failed(None, f"connect: {exc}")
            _wait(start)
            return
        with conn:
            _wait(start)
            for _ in range(self.req.transactions):
                self.transaction(conn.pgconn)

    def transaction(self, pg: Any) -> None:
        if not self._command(pg, b"BEGIN"):
            self.tally.failed(None, "BEGIN failed")
            return
        if self.req.pgbouncer and not self._command(pg, b"DEALLOCATE ALL"):
            self.tally.failed(None, "DEALLOCATE ALL failed")
            self._command(pg, b"ROLLBACK")
            return
        for sql, param in QUERIES:
            value = param if param is not None else str(self.req.hold_ms).encode()
            error = self._query(pg, sql, value)
            if error is not None:
                self.tally.failed(*error)
                self._command(pg, b"ROLLBACK")
                return
        if not self._command(pg, b"COMMIT"):
            self.tally.failed(None, "COMMIT failed")

    def _query(self, pg: Any, sql: bytes, value: bytes) -> tuple[str | None, str] | None:
        """Prepare (when due) and execute one statement; None, or (SQLSTATE, message)."""
        from psycopg import pq

        started = time.perf_counter()
        name = self.names.get(sql)
        if name is None:
            name = f"s{self.counter}".encode()
            self.counter += 1
            res = pg.prepare(name, sql)
            if res.status != pq.ExecStatus.COMMAND_OK:
                return _error(res, pg)
            if not self.req.pgbouncer:
                self.names[sql] = name
        res = pg.exec_prepared(name, [value])
        if res.status != pq.ExecStatus.TUPLES_OK:
            return _error(res, pg)
        self.tally.answered((time.perf_counter() - started) * 1000)
        return None

    @staticmethod
    def _command(pg: Any, sql: bytes) -> bool:
        from psycopg import pq

        return bool(pg.exec_(sql).status == pq.ExecStatus.COMMAND_OK)


def _error(res: Any, pg: Any) -> tuple[str | None, str]:
    from psycopg import pq

    state = res.error_field(pq.DiagnosticField.SQLSTATE)
    message = (res.error_message or pg.error_message or b"no message").decode("utf-8", "replace")
    return (state.decode() if state else None), " ".join(message.split())


class _Tally:
    """What every client saw, under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors = 0
        self.sqlstates: Counter[str] = Counter()
        self.first_error = ""

    def answered(self, ms: float) -> None:
        with self.lock:
            self.latencies.append(ms)

    def failed(self, state: str | None, message: str) -> None:
        """An error (the rest of its transaction shows as queries that did not answer)."""
        with self.lock:
            self.errors += 1
            self.sqlstates[state or "none"] += 1
            if not self.first_error:
                self.first_error = scrub(f"{state or 'error'}: {message}")


def _wait(start: threading.Barrier) -> None:
    """Wait for every client to be connected (a broken start still runs: it is timed)."""
    with contextlib.suppress(threading.BrokenBarrierError):
        start.wait(timeout=60)


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 2)


def burst(req: Burst, ctx: Context) -> BurstResult:
    """Fact: ``req.clients`` connections at once through the pool, each running
    ``req.transactions`` transactions of prepared statements, as Prisma would."""
    if req.clients < 1 or req.transactions < 1:
        raise Failure(f"pool burst: nothing to run ({req.clients} clients)")
    os.environ.update(ctx.conn("primary_pool"))  # libpq reads the connection from here
    tally = _Tally()
    start = threading.Barrier(req.clients + 1)
    threads = [
        threading.Thread(target=_Client(req, tally).run, args=(start,), daemon=True)
        for _ in range(req.clients)
    ]
    for thread in threads:
        thread.start()
    _wait(start)
    began = time.monotonic()
    for thread in threads:
        thread.join(timeout=120)
    if any(thread.is_alive() for thread in threads):
        raise Failure("pool burst: clients still waiting for the pool after 120 s")
    return BurstResult(
        clients=req.clients,
        transactions=req.clients * req.transactions,
        queries=req.clients * req.transactions * len(QUERIES),
        answered=len(tally.latencies),
        errors=tally.errors,
        sqlstates=dict(tally.sqlstates),
        first_error=tally.first_error,
        p50_ms=_percentile(tally.latencies, 0.50),
        p95_ms=_percentile(tally.latencies, 0.95),
        seconds=round(time.monotonic() - began, 2),
    )
