"""Table data: one snapshot, worker processes, COPY streams, one transaction per part.

Every worker process imports the snapshot the main process exported (``SET TRANSACTION
SNAPSHOT``), so all parts see the source exactly as of one instant. A part is a whole table,
or a ctid page range of a large one. Each part is copied in one target transaction that also
inserts its ``_dbsplit.progress`` row: after ``kill -9`` a part is either entirely there and
recorded, or absent, and the rerun copies exactly the absent ones.

A table copied as one part gets ``TRUNCATE ONLY`` + ``COPY ... (FREEZE)`` in that transaction
(rows written frozen; nothing to vacuum afterwards). Generated columns are never sent; identity
``ALWAYS`` columns keep their values (COPY does not apply ``OVERRIDING``). Rows go into
leaf partitions directly, never through the partitioned parent.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import math
import multiprocessing
import os
import queue
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import pq, sql

from dbsplit import state, watchdog
from dbsplit.catalog import Table
from dbsplit.config import Target
from dbsplit.connect import connect, first_line, lost_reason
from dbsplit.errors import LostError, SplitError
from dbsplit.urls import PgUrl

#: Bytes gathered from COPY OUT (one block per row) before one write to COPY IN.
BATCH_BYTES = 128 * 1024
#: The most parts one table is split into.
MAX_PARTS = 32
BLOCK_SIZE = 8192
#: What one row costs beyond its bytes, in bytes (measured: 1.6 M rows of 72 bytes copy and
#: index about as slowly as 0.9 M rows of 400 bytes).
ROW_COST_BYTES = 100


@dataclass(frozen=True)
class Part:
    """One unit of copy work: a whole table, or the ctid page range ``[lo, hi)`` of one."""

    target: Target
    schema: str
    name: str
    part: int
    parts: int
    #: First page (inclusive) and last page (exclusive, None for open-ended) of the range;
    #: both None for a whole-table part.
    lo: int | None
    hi: int | None
    columns: tuple[str, ...]
    binary: bool
    #: Disable the table's user triggers around the COPY (an app-created table).
    disable_triggers: bool
    est_bytes: int
    est_rows: int = 0

    @property
    def cost(self) -> int:
        """Work in byte-equivalents: every row costs a client round and an index entry, so a
        narrow table of many rows copies (and indexes) slower than its bytes suggest."""
        return self.est_bytes + ROW_COST_BYTES * self.est_rows

    @property
    def qualname(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def whole(self) -> bool:
        return self.parts == 1

    @property
    def label(self) -> str:
        """What copying the part is, in a message."""
        part = "" if self.whole else f" (part {self.part + 1}/{self.parts})"
        return f"COPY of {self.qualname}{part}"


@dataclass(frozen=True)
class PartResult:
    target: Target
    qualname: str
    part: int
    parts: int
    rows: int
    bytes: int
    seconds: float


def split_bounds(table: Table, chunk_bytes: int) -> list[int]:
    """Page bounds splitting ``table`` into ranges of about ``chunk_bytes`` (``[0]``: one part)."""
    size = table.relation_bytes
    if chunk_bytes <= 0 or size <= chunk_bytes:
        return [0]
    pages = max(1, math.ceil(size / BLOCK_SIZE))
    parts = min(MAX_PARTS, math.ceil(size / chunk_bytes))
    step = max(1, math.ceil(pages / parts))
    return list(range(0, pages, step))


def make_parts(
    target: Target,
    table: Table,
    bounds: list[int],
    *,
    binary: bool,
    disable_triggers: bool,
) -> list[Part]:
    """The parts of ``table`` for the recorded ``bounds``."""
    cols = tuple(c.name for c in table.copy_columns)
    n = len(bounds)
    if disable_triggers:
        bounds, n = [0], 1  # ALTER TABLE locks would serialise the parts anyway
    out = []
    for i, lo in enumerate(bounds):
        hi = bounds[i + 1] if i + 1 < n else None
        out.append(
            Part(
                target=target,
                schema=table.schema,
                name=table.name,
                part=i,
                parts=n,
                lo=None if n == 1 else lo,
                hi=hi,
                columns=cols,
                binary=binary,
                disable_triggers=disable_triggers,
                est_bytes=max(table.size_bytes // n, 1),
                est_rows=max(table.est_rows // n, 0),
            )
        )
    return out


def copy_out_query(part: Part) -> sql.Composed:
    """The source side: ``COPY ... TO STDOUT`` for ``part``."""
    table = sql.Identifier(part.schema, part.name)
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in part.columns)
    fmt = sql.SQL("BINARY" if part.binary else "TEXT")
    if part.lo is None:
        return sql.SQL("COPY {} ({}) TO STDOUT (FORMAT {})").format(table, cols, fmt)
    where = sql.SQL("ctid >= {}::tid").format(sql.Literal(f"({part.lo},0)"))
    if part.hi is not None:
        where = sql.SQL("{} AND ctid < {}::tid").format(where, sql.Literal(f"({part.hi},0)"))
    return sql.SQL("COPY (SELECT {} FROM ONLY {} WHERE {}) TO STDOUT (FORMAT {})").format(
        cols, table, where, fmt
    )


def copy_in_query(part: Part) -> sql.Composed:
    """The target side: ``COPY ... FROM STDIN``, with ``FREEZE`` for a whole-table part."""
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT {}{})").format(
        sql.Identifier(part.schema, part.name),
        sql.SQL(", ").join(sql.Identifier(c) for c in part.columns),
        sql.SQL("BINARY" if part.binary else "TEXT"),
        sql.SQL(", FREEZE" if part.whole else ""),
    )


def stream(
    src: psycopg.Connection[Any], tgt: psycopg.Connection[Any], part: Part
) -> tuple[int, int]:
    """Stream ``part`` from ``src`` to ``tgt`` (both in a transaction); ``(rows, bytes)``.

    This is the hot loop, so it talks to libpq directly: COPY OUT hands over one row per call,
    and going through psycopg's ``Copy`` object costs about twice the client CPU. Rows are
    gathered into ``BATCH_BYTES`` buffers before each write to COPY IN. psycopg keeps libpq in
    nonblocking mode, where a write can be refused for full buffers: the loop runs blocking.
    """
    out_pg, in_pg = src.pgconn, tgt.pgconn
    saved = out_pg.nonblocking, in_pg.nonblocking
    out_pg.nonblocking = in_pg.nonblocking = 0
    try:
        return _stream(
            out_pg, in_pg, copy_out_query(part).as_bytes(src), copy_in_query(part).as_bytes(tgt)
        )
    finally:
        out_pg.nonblocking, in_pg.nonblocking = saved


def _stream(
    out_pg: pq.abc.PGconn, in_pg: pq.abc.PGconn, copy_out: bytes, copy_in: bytes
) -> tuple[int, int]:
    _expect(out_pg.exec_(copy_out), pq.ExecStatus.COPY_OUT, "source")
    _expect(in_pg.exec_(copy_in), pq.ExecStatus.COPY_IN, "target")
    get, put = out_pg.get_copy_data, in_pg.put_copy_data
    nbytes = 0
    buf = bytearray()
    while True:
        size, data = get(0)
        if size < 0:
            break
        buf += data
        if len(buf) >= BATCH_BYTES:
            nbytes += len(buf)
            started = time.monotonic()
            _put(put(buf), in_pg)
            _stalled[0] = max(_stalled[0], time.monotonic() - started)
            buf.clear()
    if buf:
        nbytes += len(buf)
        _put(put(buf), in_pg)
    _finish(out_pg, "source")
    _put(in_pg.put_copy_end(), in_pg)
    rows = _finish(in_pg, "target")
    return rows, nbytes


#: The longest a write to the target blocked during the current part. A peer that stops
#: taking the stream blocks a write until ``tcp_user_timeout`` ends the connection; libpq
#: then reports the broken connection only later, as "unexpected eof" or "closed".
_stalled = [0.0]


def _expect(result: pq.abc.PGresult, status: pq.ExecStatus, side: str) -> None:
    if result.status != status:
        raise psycopg.OperationalError(_message(result.error_message, side))


def _put(ok: int, pgconn: pq.abc.PGconn) -> None:
    if ok != 1:
        raise psycopg.OperationalError(_message(pgconn.error_message, "target"))


def _finish(pgconn: pq.abc.PGconn, side: str) -> int:
    """Read the results that end a COPY; the command's row count."""
    rows = 0
    while (result := pgconn.get_result()) is not None:
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise psycopg.OperationalError(_message(result.error_message, side))
        rows = result.command_tuples or 0
    return rows


def _message(raw: bytes, side: str) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return f"{side}: {text}" if text else f"{side}: COPY failed"


def copy_part(src: psycopg.Connection[Any], tgt: psycopg.Connection[Any], part: Part) -> PartResult:
    """Copy one part in one target transaction that also records it."""
    start = time.monotonic()
    table = sql.Identifier(part.schema, part.name)
    with tgt.transaction():
        if part.disable_triggers:
            tgt.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER USER").format(table))
        if part.whole:
            tgt.execute(sql.SQL("TRUNCATE ONLY {}").format(table))
        rows, nbytes = stream(src, tgt, part)
        if part.disable_triggers:
            tgt.execute(sql.SQL("ALTER TABLE {} ENABLE TRIGGER USER").format(table))
        secs = time.monotonic() - start
        state.record_part(tgt, part.qualname, part.part, rows, nbytes, secs)
    return PartResult(part.target, part.qualname, part.part, part.parts, rows, nbytes, secs)


# ----- worker processes ---------------------------------------------------------------------

_worker: dict[str, Any] = {}


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this worker when the main process dies (``kill -9`` included), so
    no orphan keeps copying while a rerun starts: its open transaction just rolls back."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # pragma: no cover - not glibc
            pass
    if os.getppid() != parent:
        os._exit(1)


_PR_SET_PDEATHSIG = 1


def _init_worker(source: PgUrl, targets: dict[Target, PgUrl], snapshot: str, parent: int) -> None:
    _die_with_parent(parent)
    # An initializer that raises makes the pool respawn workers forever: keep the error for
    # the first task instead.
    _worker["urls"] = targets
    _worker["source_url"] = source
    _worker["targets"] = {}
    try:
        src = connect(source, what="source")
        src.commit()
        src.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        src.read_only = True
        src.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        _worker["source"] = src
    except SplitError as exc:
        _worker["error"] = exc
    except psycopg.Error as exc:
        _worker["error"] = SplitError(f"cannot import the source snapshot: {first_line(exc)}")


def _run_part(part: Part) -> PartResult:
    if "error" in _worker:
        raise _worker["error"]
    conns: dict[Target, psycopg.Connection[Any]] = _worker["targets"]
    name = part.target.value.upper()
    try:
        tgt = conns.get(part.target)
        if tgt is None:
            tgt = connect(_worker["urls"][part.target], what=name, autocommit=True)
            # A commit lost in a target crash loses its progress row with it, so the rerun
            # copies that part again: no need to wait for the WAL flush.
            tgt.execute("SET synchronous_commit = off")
            conns[part.target] = tgt
        _stalled[0] = 0.0
        return copy_part(_worker["source"], tgt, part)
    except psycopg.Error as exc:
        sides = (
            (conns.get(part.target), name, _worker["urls"][part.target]),
            (_worker["source"], "source", _worker["source_url"]),
        )
        for conn, what, url in sides:
            if conn is not None and conn.broken:
                # This process has no heartbeat: it names the break itself.
                message = conn.pgconn.error_message.decode("utf-8", "replace")
                reason = lost_reason(message, _stalled[0] if conn is tgt else 0.0)
                raise watchdog.lost_error(what, url.redacted(), reason, (part.label,)) from None
        raise SplitError(
            f"copy of {part.qualname} (part {part.part + 1}/{part.parts}) to {name} failed: "
            f"{first_line(exc)}"
        ) from None


class Workers:
    """``jobs`` worker processes sharing ``snapshot``, started early (while the targets are
    being prepared) so that their start-up is off the copy's clock.

    Workers are spawned (not forked): they inherit no connection of the main process, and
    receive the URLs through a pipe, never on a command line.
    """

    def __init__(
        self, *, source: PgUrl, targets: dict[Target, PgUrl], snapshot: str, jobs: int
    ) -> None:
        self.jobs = max(1, jobs)
        self._source = source.redacted()
        self._targets = {t: u.redacted() for t, u in targets.items()}
        ctx = multiprocessing.get_context("spawn")
        self._pool = ctx.Pool(
            self.jobs,
            initializer=_init_worker,
            initargs=(source, targets, snapshot, os.getpid()),
        )

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.terminate()
        self._pool.join()

    def run(self, parts: list[Part], on_done: Callable[[PartResult], None]) -> None:
        """Copy ``parts``, costliest first (so the index builds left after the last rows are
        small ones), calling ``on_done`` in this process as each one commits.

        One part per worker is handed out at a time, so the parts in flight are known: a
        server lost meanwhile (:mod:`dbsplit.watchdog`) ends the copy, naming them.
        """
        ordered = iter(enumerate(sorted(parts, key=lambda p: p.cost, reverse=True)))
        ended: queue.SimpleQueue[tuple[int, PartResult | BaseException]] = queue.SimpleQueue()
        running: dict[int, Part] = {}

        def submit() -> None:
            for i, part in itertools.islice(ordered, 1):
                running[i] = part
                self._pool.apply_async(
                    _run_part,
                    (part,),
                    callback=functools.partial(_ended, ended, i),
                    error_callback=functools.partial(_ended, ended, i),
                )

        for _ in range(self.jobs):
            submit()
        while running:
            try:
                i, outcome = ended.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                self._raise_if_lost(running.values())
                continue
            running.pop(i)
            if isinstance(outcome, BaseException):
                if isinstance(outcome, LostError):
                    watchdog.sever(outcome.server, "lost by a copy worker")
                raise outcome
            on_done(outcome)
            submit()

    def _raise_if_lost(self, running: Iterable[Part]) -> None:
        lost = watchdog.lost()
        if lost is None:
            return
        key = lost.server.key
        during = tuple(p.label for p in running if key in (self._source, self._targets[p.target]))
        raise lost.error(during or None)


#: How often the copy's main process looks for a lost server while it waits for the workers.
_POLL_SECONDS = 0.5


def _ended(
    ended: queue.SimpleQueue[tuple[int, PartResult | BaseException]],
    index: int,
    outcome: PartResult | BaseException,
) -> None:
    ended.put((index, outcome))
