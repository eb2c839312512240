"""Verify that PRIMARY and DATA together equal the source: rows, sequences, constraints, routing.

What is checked, for every table of the source:

- **Routing.** A copied table exists in exactly its target (``config.target_of``) with the same
  columns (names and types), and not in the other one; a table of an excluded schema exists
  in neither; an excluded table (``public._prisma_migrations``) is not compared, since each
  database keeps its own (the app's migrations write it on the targets); a target
  holds no table the source lacks. dbsplit's bookkeeping schema (``_dbsplit``) is ignored.
- **Definitions.** Each copied table's column collations, nullability and defaults (identity and
  generation expressions included) and its constraints equal the source's
  (:mod:`dbsplit.definitions`): what the rows cannot show, for tables the app's migrations
  created on a target.
- **Rows.** Row count and an order-independent checksum (:mod:`dbsplit.checksum`) computed inside
  each server. Tables with a single integer primary key larger than ``chunk_rows`` rows are
  split into key ranges ``[lo, hi)`` computed in parallel on both sides, and a range that differs
  is bisected (any table with an integer key, chunked or not) down to single keys, or to a range
  whose parts all differ (a dense difference), so the report names the rows.
  Partitioned tables are compared leaf by leaf (``FROM ONLY``), never parent and leaves twice.
- **Sequences.** ``last_value`` and ``is_called`` are equal on the source and the target.
- **Foreign keys.** Every foreign key on a target is validated (``convalidated``), and every
  source foreign key whose two tables share a target exists there.

Consistency: no snapshot can span three servers, so verify assumes the source is **frozen**
(read-only, as it is during the maintenance window) and the targets are not being written. Each
connection still reads inside one ``REPEATABLE READ READ ONLY`` transaction, so every query on it
sees one snapshot.

Example::

    >>> report = verify(source=src, primary=prim, data=data, config=SplitConfig())
    >>> report.ok, report.failures()
    (False, ['DATA workspace.import_rows differs in key range id [12345, 12346) (1 vs 1 rows)
    (source 887256 rows, target 887256 rows)'])
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import IsolationLevel, sql

from dbsplit.catalog import BOOKKEEPING_SCHEMA, Catalog, Table, read_catalog
from dbsplit.checksum import (
    INTEGER_TYPES,
    HashName,
    Sum,
    checksum_query,
    key_bounds_query,
    probe_values,
    run_sum,
    split_range,
)
from dbsplit.config import SplitConfig, Target
from dbsplit.connect import connect
from dbsplit.definitions import definition_differences
from dbsplit.urls import PgUrl
from dbsplit.verify_report import (
    SIDE_LABEL,
    KeyRange,
    SequenceCheck,
    Side,
    TableCheck,
    VerifyReport,
)

__all__ = ["KeyRange", "SequenceCheck", "TableCheck", "VerifyReport", "verify"]

#: Tables with more (estimated) rows than this are split into key ranges.
CHUNK_ROWS = 250_000
#: ...and tables larger than this many bytes (whichever gives more ranges).
CHUNK_BYTES = 64 * 1024 * 1024
#: At most this many key ranges per table.
MAX_CHUNKS = 64
#: A differing range is split into this many parts per bisection round...
BISECT_PARTS = 16
#: ...until it is at most this many keys wide.
NARROW_WIDTH = 1
#: At most this many differing ranges per table are narrowed (and reported).
MAX_RANGES = 20

#: Schemas never compared: dbsplit's own bookkeeping in the targets.
IGNORED_SCHEMAS = frozenset({BOOKKEEPING_SCHEMA})


# ----- connections ---------------------------------------------------------------------------


class _Connections:
    """One lazily opened connection per server per worker thread, each in one snapshot."""

    def __init__(self, urls: dict[Side, PgUrl]) -> None:
        self._urls = urls
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[psycopg.Connection[tuple[Any, ...]]] = []

    def get(self, side: Side) -> psycopg.Connection[tuple[Any, ...]]:
        conns: dict[Side, psycopg.Connection[tuple[Any, ...]]] | None = getattr(
            self._local, "conns", None
        )
        if conns is None:
            conns = {}
            self._local.conns = conns
        conn = conns.get(side)
        if conn is None or conn.closed:
            conn = connect(self._urls[side], what=SIDE_LABEL[side])
            conn.isolation_level = IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            conns[side] = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


# ----- the work ------------------------------------------------------------------------------


@dataclass
class _Job:
    """One table to compare with its copy on ``target``."""

    table: Table
    target: Side
    columns: tuple[tuple[str, str], ...]
    key: str | None
    parts: int
    weight: float
    busy: float = 0.0
    bounds: dict[Side, tuple[int, int] | None] = field(default_factory=dict)


@dataclass(frozen=True)
class _Unit:
    """One checksum query: a whole table, or one of its key ranges, on one side."""

    job: int
    side: Side
    lo: int | None
    hi: int | None


class _Failed(Exception):
    """A query on one table failed; the message names the server and the error."""


def verify(
    *,
    source: PgUrl,
    primary: PgUrl,
    data: PgUrl,
    config: SplitConfig,
    jobs: int = 4,
    chunk_rows: int = CHUNK_ROWS,
) -> VerifyReport:
    """Compare PRIMARY and DATA with the (frozen) source; never writes anything.

    ``jobs`` queries run at once (threads: the work happens inside the servers). Tables with a
    single integer primary key and more than ``chunk_rows`` rows are compared in key ranges.
    Raises :class:`~dbsplit.errors.ConnectError` when a server cannot be reached; every
    difference is in the returned report instead.
    """
    started = time.monotonic()
    jobs = max(1, jobs)
    urls: dict[Side, PgUrl] = {"source": source, "primary": primary, "data": data}
    conns = _Connections(urls)
    try:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="verify") as pool:
            # Each server's catalog is read on that server's first worker connection.
            sides: tuple[Side, ...] = ("source", "primary", "data")
            catalogs = dict(
                zip(sides, pool.map(lambda s: read_catalog(conns.get(s)), sides), strict=True)
            )
            probes = list(pool.map(lambda s: probe_values(conns.get(s)), sides))
            hash_name: HashName = "record" if len(set(probes)) == 1 else "md5"
            problems, job_list, tables = _plan(catalogs, config, chunk_rows)
            sequences = _check_sequences(conns, catalogs["source"], config)
            problems += _check_foreign_keys(conns, catalogs, config)
            tables += _compare(pool, conns, job_list, hash_name)
    finally:
        conns.close()
    tables.sort(key=lambda t: (t.target, t.schema, t.name))
    return VerifyReport(
        tables=tuple(tables),
        sequences=tuple(sequences),
        problems=tuple(problems),
        hash_name=hash_name,
        jobs=jobs,
        seconds=time.monotonic() - started,
    )


def _plan(
    catalogs: dict[Side, Catalog], config: SplitConfig, chunk_rows: int
) -> tuple[list[str], list[_Job], list[TableCheck]]:
    """Routing problems, the tables to compare, and the checks already decided (missing...)."""
    problems: list[str] = []
    jobs: list[_Job] = []
    decided: list[TableCheck] = []
    source = catalogs["source"]
    present: dict[Side, dict[tuple[str, str], Table]] = {
        side: {
            (t.schema, t.name): t for t in catalogs[side].tables if t.schema not in IGNORED_SCHEMAS
        }
        for side in ("primary", "data")
    }
    seen: set[tuple[str, str]] = set()
    for table in source.tables:
        if table.schema in IGNORED_SCHEMAS:
            continue
        name = (table.schema, table.name)
        seen.add(name)
        target = _target_side(config, table.schema, table.name)
        if target is None:
            if config.is_excluded_table(table.schema, table.name):
                continue  # each database keeps its own (public._prisma_migrations)
            problems += [
                f"{SIDE_LABEL[side]} has {table.qualname}, which is excluded from the split"
                for side in ("primary", "data")
                if name in present[side]
            ]
            continue
        other: Side = "data" if target == "primary" else "primary"
        if name in present[other]:
            problems.append(
                f"{SIDE_LABEL[other]} has {table.qualname}, which is routed to {SIDE_LABEL[target]}"
            )
        copy = present[target].get(name)
        if copy is None:
            decided.append(
                TableCheck(
                    table.schema,
                    table.name,
                    target,
                    "missing",
                    detail=f"missing on {SIDE_LABEL[target]}",
                )
            )
            continue
        mismatch = _column_mismatch(table, copy)
        if mismatch:
            decided.append(
                TableCheck(table.schema, table.name, target, "columns differ", detail=mismatch)
            )
            continue
        problems += [f"{SIDE_LABEL[target]} {diff}" for diff in definition_differences(table, copy)]
        if not table.has_data:
            continue  # a partitioned parent: its leaves are compared one by one
        key = _integer_key(table)
        parts = 1
        if key is not None and (table.est_rows > chunk_rows or table.size_bytes > CHUNK_BYTES):
            by_rows = math.ceil(table.est_rows / max(1, chunk_rows))
            by_bytes = math.ceil(table.size_bytes / CHUNK_BYTES)
            parts = min(MAX_CHUNKS, max(2, by_rows, by_bytes))
        columns = tuple((c.name, c.type) for c in table.columns)
        weight = float(max(table.size_bytes, 1))
        jobs.append(_Job(table, target, columns, key, parts, weight))
    for side in ("primary", "data"):
        for extra_schema, extra_name in sorted(set(present[side]) - seen):
            problems.append(
                f"{SIDE_LABEL[side]} has {extra_schema}.{extra_name}, "
                "which the source does not have"
            )
    return problems, jobs, decided


def _target_side(config: SplitConfig, schema: str, table: str) -> Side | None:
    if config.is_excluded_table(schema, table):
        return None
    target = config.target_of(schema)
    if target is Target.PRIMARY:
        return "primary"
    if target is Target.DATA:
        return "data"
    return None


def _column_mismatch(source: Table, copy: Table) -> str:
    """A description of how the columns differ, or ``''`` when names and types match."""
    want = {c.name: c.type for c in source.columns}
    have = {c.name: c.type for c in copy.columns}
    missing = [n for n in want if n not in have]
    extra = [n for n in have if n not in want]
    retyped = [n for n in want if n in have and want[n] != have[n]]
    parts: list[str] = []
    if missing:
        parts.append("missing column " + ", ".join(missing))
    if extra:
        parts.append("extra column " + ", ".join(extra))
    parts += [f"column {n} is {have[n]} instead of {want[n]}" for n in retyped]
    if source.kind != copy.kind:
        parts.append(f"relkind {copy.kind!r} instead of {source.kind!r}")
    return "; ".join(parts)


def _integer_key(table: Table) -> str | None:
    """The table's single-column integer primary key, if it has one."""
    if len(table.primary_key) != 1:
        return None
    column = table.column(table.primary_key[0])
    if column is None or column.type not in INTEGER_TYPES:
        return None
    return column.name


# ----- sequences and foreign keys ------------------------------------------------------------


def _check_sequences(
    conns: _Connections, source: Catalog, config: SplitConfig
) -> list[SequenceCheck]:
    checks: list[SequenceCheck] = []
    for seq in source.sequences:
        if seq.schema in IGNORED_SCHEMAS:
            continue
        owner = seq.owned_by
        if owner is not None and config.is_excluded_table(owner[0], owner[1]):
            continue
        target = _target_side(config, seq.schema, seq.name)
        if target is None:
            continue
        want = _sequence_state(conns.get("source"), seq.schema, seq.name)
        try:
            have = _sequence_state(conns.get(target), seq.schema, seq.name)
        except psycopg.errors.UndefinedTable:
            have = None
        except psycopg.Error as exc:
            checks.append(SequenceCheck(seq.schema, seq.name, target, want, None, _one_line(exc)))
            continue
        checks.append(SequenceCheck(seq.schema, seq.name, target, want, have))
    return checks


def _sequence_state(
    conn: psycopg.Connection[tuple[Any, ...]], schema: str, name: str
) -> tuple[int, bool] | None:
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(schema, name))
            )
            row = cur.fetchone()
    except psycopg.Error:
        conn.rollback()
        raise
    return None if row is None else (int(row[0]), bool(row[1]))


_FK_STATE = sql.SQL(
    """
SELECT n.nspname, c.relname, con.conname, con.convalidated
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE con.contype = 'f' AND con.conparentid = 0
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname <> ALL(%s)
ORDER BY 1, 2, 3
"""
)


def _check_foreign_keys(
    conns: _Connections, catalogs: dict[Side, Catalog], config: SplitConfig
) -> list[str]:
    """Every FK on a target validated; every same-target source FK present on its target."""
    problems: list[str] = []
    targets: tuple[Side, ...] = ("primary", "data")
    for side in targets:
        with conns.get(side).cursor() as cur:
            cur.execute(_FK_STATE, (sorted(IGNORED_SCHEMAS),))
            state = {(r[0], r[1], r[2]): bool(r[3]) for r in cur.fetchall()}
        for (schema, table, name), valid in state.items():
            if not valid:
                problems.append(
                    f"{SIDE_LABEL[side]} foreign key {name} on {schema}.{table} is not validated"
                )
        for fk in catalogs["source"].foreign_keys:
            here = _target_side(config, fk.schema, fk.table)
            there = _target_side(config, fk.ref_schema, fk.ref_table)
            if here == side and there == side and (fk.schema, fk.table, fk.name) not in state:
                problems.append(
                    f"{SIDE_LABEL[side]} foreign key {fk.name} on {fk.qualtable} is missing"
                )
    return problems


# ----- row checksums -------------------------------------------------------------------------


def _compare(
    pool: ThreadPoolExecutor,
    conns: _Connections,
    jobs: list[_Job],
    hash_name: HashName,
) -> list[TableCheck]:
    """Count and checksum every job on both sides; narrow differing key ranges."""
    errors: dict[int, str] = {}

    # Key bounds of the chunked tables, on both sides: the union covers extra target rows.
    bound_units = [
        (i, side) for i, job in enumerate(jobs) if job.parts > 1 for side in ("source", job.target)
    ]

    def bounds(item: tuple[int, Side]) -> None:
        i, side = item
        job = jobs[i]
        assert job.key is not None
        try:
            job.bounds[side] = _key_bounds(conns.get(side), job.table, job.key)
        except _Failed as exc:
            errors[i] = str(exc)

    list(pool.map(bounds, bound_units))

    units: list[_Unit] = []
    for i, job in enumerate(jobs):
        ranges = _job_ranges(job) if i not in errors else []
        if not ranges or job.parts == 1:
            job.parts = 1
            units += [_Unit(i, side, None, None) for side in ("source", job.target)]
        else:
            job.parts = len(ranges)
            units += [
                _Unit(i, side, lo, hi) for lo, hi in ranges for side in ("source", job.target)
            ]
    units.sort(key=lambda u: -jobs[u.job].weight / jobs[u.job].parts)
    sums = _run_units(pool, conns, jobs, units, hash_name, errors)

    checks: list[TableCheck] = []
    to_narrow: list[tuple[int, list[KeyRange]]] = []
    for i, job in enumerate(jobs):
        if i in errors:
            checks.append(_error_check(job, errors[i]))
            continue
        mine = [u for u in units if u.job == i and u.side == "source"]
        src = [sums[u] for u in mine]
        dst = [sums[_Unit(i, job.target, u.lo, u.hi)] for u in mine]
        differing = [(u, s, d) for u, s, d in zip(mine, src, dst, strict=True) if s != d]
        if differing:
            key = job.key
            diff_ranges = [
                KeyRange(key, u.lo, u.hi, s.rows, d.rows)
                for u, s, d in differing
                if key is not None and u.lo is not None and u.hi is not None
            ]
            to_narrow.append((i, diff_ranges))
        checks.append(
            TableCheck(
                job.table.schema,
                job.table.name,
                job.target,
                "differs" if differing else "ok",
                source_rows=sum(s.rows for s in src),
                target_rows=sum(d.rows for d in dst),
                chunks=job.parts,
                key=job.key if job.parts > 1 else None,
                seconds=job.busy,
            )
        )
    by_job = {(c.schema, c.name, c.target): n for n, c in enumerate(checks)}
    for i, diff_ranges in to_narrow:
        job = jobs[i]
        n = by_job[(job.table.schema, job.table.name, job.target)]
        old = checks[n]
        counts = (old.source_rows or 0, old.target_rows or 0)
        narrowed, more = _narrow(pool, conns, jobs, i, diff_ranges, hash_name, counts)
        checks[n] = replace(
            old,
            key=job.key,
            ranges=tuple(narrowed),
            more_ranges=more,
            seconds=job.busy,
        )
    return checks


def _error_check(job: _Job, message: str) -> TableCheck:
    return TableCheck(
        job.table.schema, job.table.name, job.target, "error", chunks=job.parts, detail=message
    )


def _job_ranges(job: _Job) -> list[tuple[int, int]]:
    """The job's key ranges, over the union of the key bounds on both sides."""
    known = [b for b in job.bounds.values() if b is not None]
    if not known:
        return []
    lo = min(b[0] for b in known)
    hi = max(b[1] for b in known) + 1
    return split_range(lo, hi, job.parts)


def _key_bounds(
    conn: psycopg.Connection[tuple[Any, ...]], table: Table, key: str
) -> tuple[int, int] | None:
    row = _query(conn, key_bounds_query(table.schema, table.name, key), table)
    if row is None or row[0] is None:
        return None
    return int(row[0]), int(row[1])


def _query(
    conn: psycopg.Connection[tuple[Any, ...]], query: sql.Composed, table: Table
) -> tuple[Any, ...] | None:
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchone()
    except psycopg.Error as exc:
        if not conn.closed:
            conn.rollback()
        raise _Failed(f"cannot read {table.qualname}: {_one_line(exc)}") from None


def _run_units(
    pool: ThreadPoolExecutor,
    conns: _Connections,
    jobs: list[_Job],
    units: list[_Unit],
    hash_name: HashName,
    errors: dict[int, str],
) -> dict[_Unit, Sum]:
    """Run every unit's checksum query in the pool; failures go to ``errors`` by job."""

    def run(unit: _Unit) -> tuple[_Unit, Sum]:
        job = jobs[unit.job]
        if unit.job in errors:
            return unit, Sum(0, 0)
        query = checksum_query(
            job.table.schema,
            job.table.name,
            job.columns,
            hash_name=hash_name,
            key=job.key if unit.lo is not None else None,
            lo=unit.lo,
            hi=unit.hi,
        )
        conn = conns.get(unit.side)
        started = time.monotonic()
        try:
            with conn.cursor() as cur:
                return unit, run_sum(cur, query)
        except psycopg.Error as exc:
            if not conn.closed:
                conn.rollback()
            errors.setdefault(
                unit.job,
                f"cannot checksum on {SIDE_LABEL[unit.side]}: {_one_line(exc)}",
            )
            return unit, Sum(0, 0)
        finally:
            with lock:
                job.busy += time.monotonic() - started

    lock = threading.Lock()
    return dict(pool.map(run, units))


def _narrow(
    pool: ThreadPoolExecutor,
    conns: _Connections,
    jobs: list[_Job],
    index: int,
    ranges: list[KeyRange],
    hash_name: HashName,
    counts: tuple[int, int],
) -> tuple[list[KeyRange], int]:
    """Bisect the differing ranges of ``job`` down to :data:`NARROW_WIDTH` keys.

    A whole-table difference on a table with an integer key starts from its key bounds
    (``counts`` are then the whole table's row counts). A range whose parts all differ is
    reported as it is (the difference is dense there). Returns the narrowest differing ranges
    (at most :data:`MAX_RANGES`) and how many more differing ranges were left out.
    """
    job = jobs[index]
    key = job.key
    if key is None:
        return [], 0
    errors: dict[int, str] = {}
    if not ranges:
        for side in ("source", job.target):
            try:
                job.bounds[side] = _key_bounds(conns.get(side), job.table, key)
            except _Failed:
                return [], 0
        whole = _job_ranges(_Job(job.table, job.target, job.columns, key, 1, 0, 0.0, job.bounds))
        ranges = [KeyRange(key, lo, hi, *counts) for lo, hi in whole]
    more = max(0, len(ranges) - MAX_RANGES)
    current = ranges[:MAX_RANGES]
    done: list[KeyRange] = []
    while current:
        done += [r for r in current if r.hi - r.lo <= NARROW_WIDTH]
        wide = [r for r in current if r.hi - r.lo > NARROW_WIDTH]
        if not wide:
            break
        children = [split_range(r.lo, r.hi, BISECT_PARTS) for r in wide]
        units = [
            _Unit(index, side, lo, hi)
            for parts in children
            for lo, hi in parts
            for side in ("source", job.target)
        ]
        sums = _run_units(pool, conns, jobs, units, hash_name, errors)
        if errors:
            done += wide
            break
        found: list[KeyRange] = []
        for parent, parts in zip(wide, children, strict=True):
            differing = []
            for lo, hi in parts:
                s = sums[_Unit(index, "source", lo, hi)]
                d = sums[_Unit(index, job.target, lo, hi)]
                if s != d:
                    differing.append(KeyRange(key, lo, hi, s.rows, d.rows))
            if not differing or len(differing) == len(parts):
                done.append(parent)  # vanished (not frozen?) or dense: keep the parent
            else:
                found += differing
        found.sort(key=lambda r: r.lo)
        room = max(0, MAX_RANGES - len(done))
        more += max(0, len(found) - room)
        current = found[:room]
    return _merge_adjacent(done), more


def _merge_adjacent(ranges: list[KeyRange]) -> list[KeyRange]:
    """Sort ``ranges`` and join those that touch (``[1, 3)`` and ``[3, 4)`` -> ``[1, 4)``)."""
    merged: list[KeyRange] = []
    for r in sorted(ranges, key=lambda r: r.lo):
        last = merged[-1] if merged else None
        if last is not None and last.hi == r.lo:
            merged[-1] = KeyRange(
                r.key,
                last.lo,
                r.hi,
                last.source_rows + r.source_rows,
                last.target_rows + r.target_rows,
            )
        else:
            merged.append(r)
    return merged


def _one_line(exc: BaseException) -> str:
    from dbsplit.urls import redact

    for line in redact(str(exc)).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__
