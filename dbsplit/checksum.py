"""The queries verify runs inside each server: row count and an order-independent checksum.

A table's (or a key range's) checksum is the row count plus the sum, as ``numeric``, of one
64-bit hash per row. The row is rebuilt from its columns by name in the source's order
(``ROW(t.a, t.b, ...)``), so a target whose columns were created in another order still
compares equal, and a missing column is an error rather than a silent difference.

Two ways to hash a row:

``record`` (the default)
    ``hash_record_extended(ROW(...), 0)``: PostgreSQL's own 64-bit hashes, per column, over the
    *stored* value for the types where two values hash alike only when they are identical
    (integers, boolean, date, timestamps, uuid, bytea, and text types compared with
    ``COLLATE "C"``), and over the column's *text rendering* for every other type (numeric,
    floats, intervals, jsonb, json, enums, domains, arrays, ranges...), so that ``1.0`` vs
    ``1.00``, ``-0`` vs ``0`` or ``'1 day'`` vs ``'24 hours'`` still differ, and enums are compared
    by label, not by OID. Two to three times cheaper than hashing the whole row's text. The hash
    functions are internal, so verify uses them only after :func:`probe_values` returned the
    same values on every server taking part.
``md5``
    The first 64 bits of ``md5(ROW(...)::text)``: slower, stable across every version and
    platform; the fallback.

Text renderings are identical on PostgreSQL 15 and 17 for the types the handled database uses,
because every dbsplit connection sets the same ``TimeZone``, ``DateStyle``, ``IntervalStyle``,
``extra_float_digits`` and ``bytea_output`` (:mod:`dbsplit.connect`).

Example (one key range of a table with an ``id integer`` and a ``price numeric`` column)::

    SELECT count(*), coalesce(sum(hash_record_extended(ROW(t."id", t."price"::text
    COLLATE "C"), 0)), 0)::text FROM ONLY "reference"."rates" AS t WHERE t."id" >= 1
    AND t."id" < 1001
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql

HashName = Literal["record", "md5"]

#: Primary-key types a table can be split on into half-open integer ranges ``[lo, hi)``.
INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})

#: ``format_type`` names whose stored value is hashed directly: equal hash input means an
#: identical value (no scale, sign-of-zero, unit or case folding), and no OIDs.
_EXACT_TYPES = re.compile(
    r"^(smallint|integer|bigint|boolean|date|uuid|bytea"
    r"|timestamp(\(\d+\))? with(out)? time zone)$"
)
#: Text types: hashed directly too, with ``COLLATE "C"`` (byte-wise, whatever the column's).
_TEXT_TYPES = re.compile(r"^(text|character varying(\(\d+\))?|character(\(\d+\))?)$")

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

#: Rows of every directly hashed type, hashed with ``hash_record_extended`` on every server.
_PROBE_ROWS = sql.SQL(
    """
SELECT hash_record_extended(ROW(a, b, c, d, e, f, g, h, i COLLATE "C", j COLLATE "C",
                                k COLLATE "C", l, m), 0)::text
FROM (VALUES
  (1::smallint, 2::integer, 3::bigint, true, date '2024-02-29',
   timestamp '2024-02-29 12:34:56.789', timestamptz '2024-02-29 12:34:56.789+00',
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, 'Grüße'::text, 'x'::varchar(9),
   'ab'::char(4), '\\x00ff'::bytea, NULL::integer),
  ((-32768)::smallint, (-2147483648)::integer, 9223372036854775807::bigint, false, date 'infinity',
   timestamp '-infinity', timestamptz '1999-12-31 23:59:59+00',
   '00000000-0000-0000-0000-000000000000'::uuid, '', repeat('long ', 40)::varchar,
   ''::char(1), ''::bytea, 7)
) AS v(a, b, c, d, e, f, g, h, i, j, k, l, m)
"""
)


@dataclass(frozen=True)
class Sum:
    """Row count and hash sum of one table or key range on one server."""

    rows: int
    total: int


def probe_query() -> sql.Composed:
    """Hash every probe string (``hashtextextended``, seed 0) in one round trip."""
    return sql.SQL(
        'SELECT hashtextextended(s COLLATE "C", 0)::text FROM unnest({}::text[]) AS s'
    ).format(sql.Literal(list(PROBE_STRINGS)))


def probe_values(conn: psycopg.Connection[tuple[Any, ...]]) -> tuple[str, ...]:
    """The hashes of the probe strings and probe rows on ``conn``'s server.

    Verify compares them across the three servers and uses ``record`` hashing only when they
    are all equal.
    """
    with conn.cursor() as cur:
        cur.execute(probe_query())
        values = [str(row[0]) for row in cur.fetchall()]
        cur.execute(_PROBE_ROWS)
        values += [str(row[0]) for row in cur.fetchall()]
    return tuple(values)


def hashes_exactly(type_name: str) -> bool:
    """True when a column of ``type_name`` is hashed by value, not by its text rendering."""
    return bool(_EXACT_TYPES.match(type_name) or _TEXT_TYPES.match(type_name))


def _cell(name: str, type_name: str) -> sql.Composable:
    column = sql.Identifier("t", name)
    if _EXACT_TYPES.match(type_name):
        return column
    if _TEXT_TYPES.match(type_name):
        return sql.SQL('{} COLLATE "C"').format(column)
    return sql.SQL('{}::text COLLATE "C"').format(column)


def row_hash(columns: Sequence[tuple[str, str]], hash_name: HashName) -> sql.Composable:
    """A signed 64-bit hash of the row ``t``, from ``columns`` given as ``(name, type)``."""
    if not columns:
        return sql.SQL("0::bigint")
    if hash_name == "record":
        cells = sql.SQL(", ").join(_cell(name, type_name) for name, type_name in columns)
        return sql.SQL("hash_record_extended(ROW({}), 0)").format(cells)
    text = sql.SQL("ROW({})::text").format(
        sql.SQL(", ").join(sql.Identifier("t", name) for name, _ in columns)
    )
    return sql.SQL("('x' || substr(md5({}), 1, 16))::bit(64)::bigint").format(text)


def checksum_query(
    schema: str,
    table: str,
    columns: Sequence[tuple[str, str]],
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
