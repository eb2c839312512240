"""Run state, recorded in each target in the same transaction as the work it describes.

The bookkeeping schema :data:`~dbsplit.catalog.BOOKKEEPING_SCHEMA` (``_dbsplit``) holds:

``steps``
    one row per finished step (``pre-data``, ``post-data:<table>``, ``fks``, ``sequences``,
    ``matviews``, ``done``), inserted by the transaction that did the step.
``splits``
    the ctid page bounds a large table was split on, fixed by the first run so a rerun
    copies exactly the parts that are missing.
``progress``
    one row per copied table part, inserted by the transaction that ran its COPY: a part is
    either fully there with its row, or absent without one.
``autovacuum_paused``
    the tables whose autovacuum dbsplit turned off for the load (:mod:`dbsplit.autovacuum`),
    inserted with the change and deleted by the transaction that turns it back on.
``dropped_fks``
    foreign keys dbsplit dropped from app-created tables, inserted by the transaction that
    dropped them and deleted by the one that re-created them.
``source_mark``
    the source's write position (:func:`dbsplit.freeze.write_position`) at the first run's
    snapshot, recorded with the bookkeeping itself: a rerun, verify and the cut-over compare
    the source's position now with it, so a copy of an older state is never taken for done.

The schema stays after a successful run: it is what makes a second run a no-op, and what tells
rows dbsplit wrote from rows it did not. ``dbsplit`` never reads or verifies it as data.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from dbsplit.catalog import BOOKKEEPING_SCHEMA, Catalog, read_catalog, tables_with_rows
from dbsplit.deps import read_abilities
from dbsplit.plan import TargetState

STEP_PRE_DATA = "pre-data"
STEP_DONE = "done"

_S = sql.Identifier(BOOKKEEPING_SCHEMA)

_DDL = sql.SQL(
    """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.steps (
    name text PRIMARY KEY,
    done_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {s}.splits (
    relation text PRIMARY KEY,
    bounds integer[] NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.progress (
    relation text NOT NULL,
    part integer NOT NULL,
    rows bigint NOT NULL,
    bytes bigint NOT NULL,
    seconds double precision NOT NULL,
    done_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (relation, part)
);
CREATE TABLE IF NOT EXISTS {s}.autovacuum_paused (
    schema_name text NOT NULL,
    table_name text NOT NULL,
    PRIMARY KEY (schema_name, table_name)
);
CREATE TABLE IF NOT EXISTS {s}.dropped_fks (
    schema_name text NOT NULL,
    table_name text NOT NULL,
    name text NOT NULL,
    definition text NOT NULL,
    PRIMARY KEY (schema_name, table_name, name)
);
COMMENT ON SCHEMA {s} IS 'dbsplit run state: which steps and table parts are copied';
"""
).format(s=_S)

_MARK_DDL = sql.SQL(
    """
CREATE TABLE IF NOT EXISTS {s}.source_mark (
    name text PRIMARY KEY,
    position jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
)
"""
).format(s=_S)


def ensure_schema(conn: psycopg.Connection[Any]) -> None:
    """Create the bookkeeping schema and tables (idempotent), and commit."""
    with conn.transaction():
        if not _has_schema(conn):
            conn.execute(_DDL)
        conn.execute(_MARK_DDL)


def _has_schema(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", (BOOKKEEPING_SCHEMA,)
    ).fetchone()
    return bool(row and row[0])


def done_steps(conn: psycopg.Connection[Any]) -> frozenset[str]:
    """The names of the finished steps (empty before the first run)."""
    if not _has_schema(conn):
        return frozenset()
    return frozenset(r[0] for r in conn.execute(sql.SQL("SELECT name FROM {}.steps").format(_S)))


def record_step(conn: psycopg.Connection[Any], name: str) -> None:
    """Record step ``name`` as done (call inside the step's own transaction)."""
    conn.execute(
        sql.SQL("INSERT INTO {}.steps (name) VALUES (%s) ON CONFLICT DO NOTHING").format(_S),
        (name,),
    )


def recorded_tables(conn: psycopg.Connection[Any]) -> frozenset[str]:
    """The tables dbsplit has copied at least one part of."""
    if not _has_schema(conn):
        return frozenset()
    rows = conn.execute(sql.SQL("SELECT DISTINCT relation FROM {}.progress").format(_S))
    return frozenset(r[0] for r in rows)


def done_parts(conn: psycopg.Connection[Any]) -> dict[str, dict[int, tuple[int, int, float]]]:
    """``{relation: {part: (rows, bytes, seconds)}}`` for every copied part."""
    out: dict[str, dict[int, tuple[int, int, float]]] = {}
    if not _has_schema(conn):
        return out
    rows = conn.execute(
        sql.SQL("SELECT relation, part, rows, bytes, seconds FROM {}.progress").format(_S)
    )
    for rel, part, nrows, nbytes, secs in rows:
        out.setdefault(rel, {})[part] = (int(nrows), int(nbytes), float(secs))
    return out


def record_part(
    conn: psycopg.Connection[Any], relation: str, part: int, rows: int, nbytes: int, secs: float
) -> None:
    """Record one copied part (call inside the transaction that ran its COPY)."""
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.progress (relation, part, rows, bytes, seconds)"
            " VALUES (%s, %s, %s, %s, %s)"
        ).format(_S),
        (relation, part, rows, nbytes, secs),
    )


def split_bounds(conn: psycopg.Connection[Any]) -> dict[str, list[int]]:
    """The recorded ctid page bounds of split tables."""
    if not _has_schema(conn):
        return {}
    rows = conn.execute(sql.SQL("SELECT relation, bounds FROM {}.splits").format(_S))
    return {r[0]: list(r[1]) for r in rows}


def record_splits(conn: psycopg.Connection[Any], splits: dict[str, list[int]]) -> None:
    """Fix the split of tables not yet recorded (first run wins), and commit."""
    with conn.transaction():
        for rel, bounds in splits.items():
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.splits (relation, bounds) VALUES (%s, %s)"
                    " ON CONFLICT DO NOTHING"
                ).format(_S),
                (rel, bounds),
            )


def dropped_fks(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str, str]]:
    """``(schema, table, name, definition)`` of the foreign keys waiting to be re-created."""
    if not _has_schema(conn):
        return []
    rows = conn.execute(
        sql.SQL(
            "SELECT schema_name, table_name, name, definition FROM {}.dropped_fks ORDER BY 1, 2, 3"
        ).format(_S)
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def record_dropped_fk(
    conn: psycopg.Connection[Any], schema: str, table: str, name: str, definition: str
) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.dropped_fks (schema_name, table_name, name, definition)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"
        ).format(_S),
        (schema, table, name, definition),
    )


def forget_dropped_fk(conn: psycopg.Connection[Any], schema: str, table: str, name: str) -> None:
    conn.execute(
        sql.SQL(
            "DELETE FROM {}.dropped_fks WHERE schema_name = %s AND table_name = %s AND name = %s"
        ).format(_S),
        (schema, table, name),
    )


def inspect_target(conn: psycopg.Connection[Any], routed: Iterable[tuple[str, str]]) -> TargetState:
    """Read what a target holds: its catalog, which of the ``routed`` tables hold rows, and
    dbsplit's own records. Reads only; leaves the connection idle."""
    catalog: Catalog = read_catalog(conn)
    present = [t for s, n in routed if (t := catalog.table(s, n)) is not None]
    with_rows = tables_with_rows(conn, present)
    steps = done_steps(conn)
    recorded = recorded_tables(conn)
    abilities = read_abilities(conn)
    if not conn.autocommit:
        conn.rollback()
    return TargetState(
        catalog=catalog,
        tables_with_rows=with_rows,
        tables_recorded=recorded,
        created_by_dbsplit=STEP_PRE_DATA in steps,
        finished=STEP_DONE in steps,
        abilities=abilities,
    )


def source_mark(conn: psycopg.Connection[Any]) -> dict[str, Any] | None:
    """The source's write position recorded at the first run's snapshot, or None."""
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"{BOOKKEEPING_SCHEMA}.source_mark",)
    ).fetchone()
    if not row or not row[0]:
        return None
    mark = conn.execute(
        sql.SQL("SELECT position FROM {}.source_mark WHERE name = 'snapshot'").format(_S)
    ).fetchone()
    if not conn.autocommit:
        conn.rollback()
    return dict(mark[0]) if mark else None


def record_source_mark(conn: psycopg.Connection[Any], position: dict[str, Any]) -> None:
    """Record the source's position at the snapshot, unless a first run already did."""
    with conn.transaction():
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.source_mark (name, position) VALUES ('snapshot', %s)"
                " ON CONFLICT DO NOTHING"
            ).format(_S),
            (Jsonb(position),),
        )
