"""Autovacuum is paused on the tables being loaded and resumed when the target is done.

A table that just received its rows is what autovacuum looks for first: it would VACUUM and
ANALYZE it while dbsplit builds its indexes and validates its foreign keys, and those
statements wait for it (a server cancels an autovacuum that blocks someone only after
``deadlock_timeout``, a second by default), besides taking the CPU the copy needs. So each
table dbsplit copies into gets ``autovacuum_enabled = off`` (its TOAST table too) before the
copy, recorded in ``_dbsplit.autovacuum_paused`` in the same transaction, and the options are
reset by the transaction that marks the target done. A table whose definition sets either
option itself is left alone. After the window, autovacuum vacuums and analyzes the new tables
as it would after any load.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import sql

from dbsplit.catalog import BOOKKEEPING_SCHEMA

_PAUSED = sql.Identifier(BOOKKEEPING_SCHEMA, "autovacuum_paused")
_OPTION = "autovacuum_enabled="


def pause(conn: psycopg.Connection[Any], tables: Iterable[tuple[str, str]]) -> int:
    """Pause autovacuum on ``tables`` (plain tables or leaf partitions), in one transaction;
    the number of tables paused by this call."""
    paused = 0
    with conn.transaction():
        listed = sql.SQL("SELECT schema_name, table_name FROM {}").format(_PAUSED)
        done = {(s, n) for s, n in conn.execute(listed)}
        for schema, name in tables:
            if (schema, name) in done or _sets_option(conn, schema, name):
                continue
            conn.execute(
                sql.SQL(
                    "ALTER TABLE {} SET (autovacuum_enabled = off, toast.autovacuum_enabled = off)"
                ).format(sql.Identifier(schema, name))
            )
            conn.execute(
                sql.SQL("INSERT INTO {} (schema_name, table_name) VALUES (%s, %s)").format(_PAUSED),
                (schema, name),
            )
            paused += 1
    return paused


def resume(conn: psycopg.Connection[Any]) -> None:
    """Reset the options :func:`pause` set; run inside the caller's transaction."""
    rows = conn.execute(
        sql.SQL("DELETE FROM {} RETURNING schema_name, table_name").format(_PAUSED)
    ).fetchall()
    for schema, name in rows:
        conn.execute(
            sql.SQL("ALTER TABLE {} RESET (autovacuum_enabled, toast.autovacuum_enabled)").format(
                sql.Identifier(schema, name)
            )
        )


def _sets_option(conn: psycopg.Connection[Any], schema: str, name: str) -> bool:
    row = conn.execute(
        "SELECT c.reloptions, t.reloptions FROM pg_class c"
        " LEFT JOIN pg_class t ON t.oid = c.reltoastrelid"
        " WHERE c.oid = format('%%I.%%I', %s::text, %s::text)::regclass",
        (schema, name),
    ).fetchone()
    options = [o for opts in (row or ()) if opts for o in opts]
    return any(o.startswith(_OPTION) for o in options)
