"""After the rows: foreign keys, sequences, materialized views.

- Foreign keys are added ``NOT VALID`` then validated, each in one transaction (with the
  deletion of its ``_dbsplit.dropped_fks`` row when it was an app-created one), so a crash
  leaves each either absent or valid. Foreign keys that cross the two databases are not among
  them (the plan refuses them unless ``--drop-cross-db-fks``).
- Every sequence (identity, serial, standalone) gets the source's ``last_value`` and
  ``is_called`` with ``setval``.
- Materialized views are refreshed in creation order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg import sql

from dbsplit import state, watchdog
from dbsplit.catalog import Catalog, ForeignKey, Relation
from dbsplit.connect import first_line
from dbsplit.errors import SplitError

_NOT_VALID = " NOT VALID"


def add_foreign_key(
    conn: psycopg.Connection[Any],
    schema: str,
    table: str,
    name: str,
    definition: str,
    *,
    partitioned: bool = False,
    forget: bool = False,
) -> None:
    """Add one foreign key unless it exists: ``NOT VALID``, then ``VALIDATE``, one transaction.

    Partitioned tables cannot take ``NOT VALID`` keys (before PostgreSQL 18): added validated.
    A key that is ``NOT VALID`` on the source stays so. ``forget`` also deletes its
    ``_dbsplit.dropped_fks`` row, in the same transaction.
    """
    ident = sql.Identifier(schema, table)
    invalid_on_source = definition.endswith(_NOT_VALID)
    body = definition.removesuffix(_NOT_VALID)
    try:
        with watchdog.doing(f"foreign key {name} on {schema}.{table}"), conn.transaction():
            row = conn.execute(
                "SELECT convalidated FROM pg_constraint"
                " WHERE conrelid = format('%%I.%%I', %s::text, %s::text)::regclass"
                " AND conname = %s",
                (schema, table, name),
            ).fetchone()
            if row is None:
                conn.execute(
                    sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}{}").format(
                        ident,
                        sql.Identifier(name),
                        sql.SQL(body),  # from pg_get_constraintdef, not user input
                        sql.SQL("" if partitioned else _NOT_VALID),
                    )
                )
            if not invalid_on_source and (row is None or not row[0]) and not partitioned:
                conn.execute(
                    sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
                        ident, sql.Identifier(name)
                    )
                )
            if forget:
                state.forget_dropped_fk(conn, schema, table, name)
    except psycopg.Error as exc:
        raise SplitError(
            f"cannot add foreign key {name!r} on {schema}.{table}: {first_line(exc)}"
        ) from None


def add_foreign_keys(
    connect: Callable[[], psycopg.Connection[Any]],
    fks: Iterable[ForeignKey],
    source: Catalog,
    jobs: int,
) -> None:
    """Add the source's foreign keys ``fks`` to a target dbsplit created.

    Each key locks both its tables while it is validated, so the keys are added in groups
    that share no table (:func:`fk_groups`): up to ``jobs`` groups at once, each on its own
    connection from ``connect()``, neither waiting on nor deadlocking another.
    """

    def one_group(group: list[ForeignKey]) -> None:
        with connect() as conn:
            for fk in group:
                t = source.table(fk.schema, fk.table)
                add_foreign_key(
                    conn,
                    fk.schema,
                    fk.table,
                    fk.name,
                    fk.definition,
                    partitioned=t is not None and t.kind == "p",
                )

    groups = fk_groups(fks)
    if not groups:
        return
    with ThreadPoolExecutor(max(1, min(jobs, len(groups)))) as pool:
        for future in [pool.submit(one_group, g) for g in groups]:
            future.result()


def fk_groups(fks: Iterable[ForeignKey]) -> list[list[ForeignKey]]:
    """``fks`` in groups that share no table (the connected parts of the graph of tables and
    keys), largest first; within a group, in the given order."""
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while (up := parent.setdefault(name, name)) != name:
            parent[name] = parent.setdefault(up, up)
            name = up
        return name

    keys = list(fks)
    for fk in keys:
        parent[root(fk.qualtable)] = root(fk.qualref)
    groups: dict[str, list[ForeignKey]] = {}
    for fk in keys:
        groups.setdefault(root(fk.qualtable), []).append(fk)
    return sorted(groups.values(), key=len, reverse=True)


def drop_foreign_keys(conn: psycopg.Connection[Any], target: Catalog, tables: set[str]) -> None:
    """Drop the foreign keys on (or into) ``tables`` of an app-created target, recording each
    definition in the same transaction, so a crash cannot lose one."""
    fks = [fk for fk in target.foreign_keys if fk.qualtable in tables or fk.qualref in tables]
    if not fks:
        return
    with conn.transaction():
        for fk in fks:
            state.record_dropped_fk(conn, fk.schema, fk.table, fk.name, fk.definition)
            conn.execute(
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                    sql.Identifier(fk.schema, fk.table), sql.Identifier(fk.name)
                )
            )


def restore_dropped_foreign_keys(conn: psycopg.Connection[Any], target: Catalog) -> None:
    """Re-create the foreign keys :func:`drop_foreign_keys` recorded."""
    for schema, table, name, definition in state.dropped_fks(conn):
        t = target.table(schema, table)
        add_foreign_key(
            conn,
            schema,
            table,
            name,
            definition,
            partitioned=t is not None and t.kind == "p",
            forget=True,
        )


def read_sequences(
    conn: psycopg.Connection[Any], seqs: Sequence[Any]
) -> list[tuple[str, str, int, bool]]:
    """``(schema, name, last_value, is_called)`` of each sequence on the source."""
    out = []
    for seq in seqs:
        row = conn.execute(
            sql.SQL("SELECT last_value, is_called FROM {}").format(seq.ident)
        ).fetchone()
        assert row is not None
        out.append((seq.schema, seq.name, int(row[0]), bool(row[1])))
    return out


def set_sequences(
    conn: psycopg.Connection[Any], values: Sequence[tuple[str, str, int, bool]]
) -> None:
    """``setval`` every sequence, in one transaction with the step record."""
    with conn.transaction():
        for schema, name, last_value, is_called in values:
            try:
                conn.execute(
                    "SELECT pg_catalog.setval(format('%%I.%%I', %s::text, %s::text)::regclass,"
                    " %s, %s)",
                    (schema, name, last_value, is_called),
                )
            except psycopg.Error as exc:
                raise SplitError(
                    f"cannot set sequence {schema}.{name} on the target: {first_line(exc)}"
                ) from None
        state.record_step(conn, "sequences")


def refresh_matviews(conn: psycopg.Connection[Any], views: Sequence[Relation]) -> None:
    """Refresh each materialized view, in creation order, in one transaction."""
    with conn.transaction():
        for v in views:
            try:
                conn.execute(sql.SQL("REFRESH MATERIALIZED VIEW {}").format(v.ident))
            except psycopg.Error as exc:
                raise SplitError(
                    f"cannot refresh materialized view {v.qualname}: {first_line(exc)}"
                ) from None
        state.record_step(conn, "matviews")
