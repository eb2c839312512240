"""The queries verify runs inside each server: row count and an order-independent checksum.

A table's (or a key range's) checksum is the row count plus the sum, as ``numeric``, of one
64-bit hash per row. The hash is taken over the row's text rendering, built from the columns by
name in the source's order (``ROW(t.a, t.b, ...)::text``), so a target whose columns were created
in another order still compares equal, and a missing column is an error rather than a silent
difference. Text rendering is identical on PostgreSQL 15 and 17 for the types the handled
database uses, because every dbsplit connection sets the same ``TimeZone``, ``DateStyle``,
``IntervalStyle``, ``extra_float_digits`` and ``bytea_output`` (:mod:`dbsplit.connect`).

Two hash functions are available:

``hashtextextended``
    PostgreSQL's own 64-bit text hash (the one hash partitioning relies on): about 15x cheaper
    than md5 on top of the text rendering. It is internal, so verify only uses it after
    :func:`probe_values` returned the same values on every server taking part.
``md5``
    The first 64 bits of ``md5(row::text)``: slower, stable across every version; the fallback.

Example (the query for one key range)::

    SELECT count(*), coalesce(sum(hashtextextended(ROW(t."id", t."name")::text COLLATE "C", 0)),
    0)::text FROM ONLY "reference"."carriers" AS t WHERE t."id" >= 1 AND t."id" < 1001
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql

HashName = Literal["hashtextextended", "md5"]

#: Primary-key types a table can be split on into half-open integer ranges ``[lo, hi)``.
INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})

#: Strings hashed on every server before ``hashtextextended`` is trusted: lengths around the
#: 4/8/12-byte block boundaries, multi-byte UTF-8, and row renderings with quotes and NULLs.
PROBE_STRINGS: tuple[str, ...] = (
    "",
    "a",
    "ab",
    "abc",
    "abcd",
    "abcde",
    "abcdefghijk",
    "abcdefghijkl",
    "abcdefghijklm",
    '(1,"x y",,"{""k"": [1, 2.5, null]}")',
    "Grüße, Zoë — 東京 ✓",
    '(42,2024-02-29 23:59:59.123456+00,"\\\\x00ff",NaN,-Infinity)',
    "x" * 255,
    "handled" * 97,
)


@dataclass(frozen=True)
class Sum:
    """Row count and hash sum of one table or key range on one server."""

    rows: int
    total: int


def probe_query() -> sql.Composed:
    """Hash every probe string with ``hashtextextended`` (seed 0) in one round trip."""
    return sql.SQL(
        'SELECT hashtextextended(s COLLATE "C", 0)::text FROM unnest({}::text[]) AS s'
    ).format(sql.Literal(list(PROBE_STRINGS)))


def probe_values(conn: psycopg.Connection[tuple[Any, ...]]) -> tuple[str, ...]:
    """The probe strings' ``hashtextextended`` values on ``conn``'s server."""
    with conn.cursor() as cur:
        cur.execute(probe_query())
        return tuple(str(row[0]) for row in cur.fetchall())


def row_hash(columns: Sequence[str], hash_name: HashName) -> sql.Composable:
    """A signed 64-bit hash of the row ``t`` built from ``columns`` by name."""
    cells = sql.SQL(", ").join(sql.Identifier("t", name) for name in columns)
    text = sql.SQL("ROW({})::text").format(cells) if columns else sql.SQL("'()'::text")
    if hash_name == "hashtextextended":
        return sql.SQL('hashtextextended({} COLLATE "C", 0)').format(text)
    return sql.SQL("('x' || substr(md5({}), 1, 16))::bit(64)::bigint").format(text)


def checksum_query(
    schema: str,
    table: str,
    columns: Sequence[str],
    *,
    hash_name: HashName,
    key: str | None = None,
    lo: int | None = None,
    hi: int | None = None,
) -> sql.Composed:
    """``count(*)`` and the hash sum over ``ONLY schema.table``, optionally ``lo <= key < hi``."""
    query = sql.SQL("SELECT count(*), coalesce(sum({}), 0)::text FROM ONLY {} AS t").format(
        row_hash(columns, hash_name), sql.Identifier(schema, table)
    )
    where: list[sql.Composable] = []
    if key is not None and lo is not None:
        where.append(sql.SQL("{} >= {}").format(sql.Identifier("t", key), sql.Literal(lo)))
    if key is not None and hi is not None:
        where.append(sql.SQL("{} < {}").format(sql.Identifier("t", key), sql.Literal(hi)))
    if where:
        query = sql.Composed([query, sql.SQL(" WHERE "), sql.SQL(" AND ").join(where)])
    return query


def key_bounds_query(schema: str, table: str, key: str) -> sql.Composed:
    """``min(key)`` and ``max(key)`` over ``ONLY schema.table`` (an index scan on a PK)."""
    return sql.SQL("SELECT min({k}), max({k}) FROM ONLY {t}").format(
        k=sql.Identifier(key), t=sql.Identifier(schema, table)
    )


def split_range(lo: int, hi: int, parts: int) -> list[tuple[int, int]]:
    """Split ``[lo, hi)`` into at most ``parts`` contiguous, non-empty half-open ranges.

    >>> split_range(0, 10, 3)
    [(0, 4), (4, 7), (7, 10)]
    """
    if hi <= lo:
        return []
    parts = max(1, min(parts, hi - lo))
    width, extra = divmod(hi - lo, parts)
    ranges: list[tuple[int, int]] = []
    start = lo
    for index in range(parts):
        end = start + width + (1 if index < extra else 0)
        ranges.append((start, end))
        start = end
    return ranges


def run_sum(cur: psycopg.Cursor[tuple[Any, ...]], query: sql.Composed) -> Sum:
    """Run a :func:`checksum_query` and return its :class:`Sum`."""
    cur.execute(query)
    row = cur.fetchone()
    if row is None:  # pragma: no cover - an aggregate always returns a row
        return Sum(0, 0)
    return Sum(int(row[0]), int(row[1]))
