"""Make the source database read-only for the migration window, and undo it.

``freeze`` sets ``default_transaction_read_only = on`` on the database, then terminates every
other session on it, so each new session (the app's included) starts read-only and no write
can land in the old database after the copy starts. ``unfreeze`` resets the setting. Both are
idempotent and report the resulting state. They need the privileges of the database's owner
(or a superuser) on the source, which the VPS's local role has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from dbsplit.connect import connect, first_line
from dbsplit.errors import SplitError, UsageError
from dbsplit.urls import PgUrl


@dataclass(frozen=True)
class FreezeState:
    """The outcome of :func:`freeze` or :func:`unfreeze`."""

    database: str
    frozen: bool
    changed: bool
    terminated: int

    def render(self) -> str:
        state = "read-only (frozen)" if self.frozen else "read-write"
        verb = "now" if self.changed else "already"
        extra = f"; {self.terminated} other session(s) terminated" if self.terminated else ""
        return f"database {self.database!r} is {verb} {state}{extra}"


def is_frozen(conn: psycopg.Connection[Any]) -> bool:
    """True when the current database has ``default_transaction_read_only = on`` set."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_db_role_setting s JOIN pg_database d"
        " ON d.oid = s.setdatabase AND s.setrole = 0"
        " WHERE d.datname = current_database()"
        " AND 'default_transaction_read_only=on' = ANY (s.setconfig))"
    ).fetchone()
    return bool(row and row[0])


def freeze(source: PgUrl) -> FreezeState:
    """Make the source database read-only and terminate its other sessions."""
    return _set(source, frozen=True)


def unfreeze(source: PgUrl) -> FreezeState:
    """Make the source database writable again."""
    return _set(source, frozen=False)


def _set(source: PgUrl, *, frozen: bool) -> FreezeState:
    if not source.dbname:
        raise UsageError(f"source URL {source.redacted()} names no database")
    with connect(source, what="source", autocommit=True) as conn:
        # This session may itself start read-only once frozen: make it writable.
        conn.execute("SET default_transaction_read_only = off")
        db = sql.Identifier(source.dbname)
        was = is_frozen(conn)
        try:
            if frozen and not was:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(db)
                )
            elif not frozen and was:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(db)
                )
            terminated = 0
            if frozen:
                rows = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND backend_type = 'client backend'"
                ).fetchall()
                terminated = sum(1 for r in rows if r[0])
        except psycopg.Error as exc:
            verb = "freeze" if frozen else "unfreeze"
            raise SplitError(
                f"cannot {verb} source database {source.dbname!r}: {first_line(exc)}"
            ) from None
    return FreezeState(source.dbname, frozen, was != frozen, terminated)
