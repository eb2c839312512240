"""The queries verify runs inside each server: row count and an order-independent checksum.

A table's (or a key range's) checksum is the row count plus the sum, as ``numeric``, of one
64-bit hash per row. The row is rebuilt from its columns by name in the source's order
(``ROW(t.a, t.b, ...)``), so a target whose columns were created in another order still
compares equal, and a missing column is an error rather than a silent difference.

Two ways to hash a row:

``record`` (the default)
    ``hashfloat8extended(hash_record_extended(ROW(...), 0)::float8, 2024)``: PostgreSQL's own
    64-bit hashes, per column, over the *stored* value for the types where two values hash
    alike only when they are identical (integers, boolean, date, timestamps, uuid, bytea, and
    text types compared with ``COLLATE "C"``), and over the column's *text rendering* for every
    other type (numeric, floats, intervals, jsonb, json, enums, domains, arrays, ranges...), so
    that ``1.0`` vs ``1.00``, ``-0`` vs ``0`` or ``'1 day'`` vs ``'24 hours'`` still differ, and
    enums are compared by label, not by OID; then each row's hash is mixed (below). Two to three
    times cheaper than hashing the whole row's text. The hash functions are internal, so verify
    uses them only after :func:`probe_values` returned the same values on every server taking
    part; the probe hashes its rows through :func:`row_hash` itself, so it covers every
    function a row hash uses, the mixing included.
``md5``
    The first 64 bits of ``md5(ROW(...)::text)``: slower, stable across every version and
    platform; the fallback. MD5 is already non-linear in the whole row's text.

**Why each row's hash is mixed before the sum.** ``hash_record_extended`` combines the column
hashes linearly: ``h = 31^(n-1)·c1 + ... + 31·c(n-1) + cn (mod 2^64)``, a NULL counting as
``c = 0``. A sum of such row hashes is a linear combination of per-column sums, so moving a
value from one row to another (two customers' e-mails swapped, a column's values shuffled, a
value moved onto a row where the column was NULL) leaves every column's sum, and the table's,
unchanged. Each row's hash therefore goes through a non-linear function first:
``hashfloat8extended`` of the hash as a double, which is Bob Jenkins' lookup3 over its 8 bytes
(additions, XORs and rotations together: linear neither in integer arithmetic nor bit by bit).
A move turns two rows' hashes ``h1, h2`` into ``h1', h2'`` with ``h1 + h2 = h1' + h2'``, but
``mix(h1) + mix(h2)`` and ``mix(h1') + mix(h2')`` are unrelated 64-bit values, equal by chance
only; a move between two rows that are equal apart from the moved value exchanges whole rows,
which is no difference. The conversion to a double keeps the 53 most significant bits of the
row hash, so two distinct row hashes mix alike with a chance of about 2^-53. The other mixes
measured on the benchmark's data: ``hashint8extended(h, seed)`` costs 6 ns per row against 23
but folds its input to 32 bits first (low half XOR high half: chance 2^-32);
``hashtextextended(h::text, seed)`` keeps all 64 bits but costs about 65 ns per row, where
verify already sits near its budget (half the copy's time in ``make bench``).

**What is still missed.** PostgreSQL hashes ``bigint`` and timestamp values the same way,
folded to 32 bits, so a cell changed to a value whose two halves fold alike (``bigint`` ``0``
and ``4294967297``, or ``2147483648`` and ``-2147483648``; many pairs of timestamps
4294.967297 s apart) is missed. Hashing these columns through their binary form (``int8send``,
``timestamptz_send``) would close it for about 20 ns per cell, some 5 % more verify time on the
benchmark's data, which that budget does not leave.

Text renderings are identical on PostgreSQL 15 and 17 for the types the handled database uses,
because every dbsplit connection sets the same ``TimeZone``, ``DateStyle``, ``IntervalStyle``,
``extra_float_digits`` and ``bytea_output`` (:mod:`dbsplit.connect`).

Example (one key range of a table with an ``id integer`` and a ``price numeric`` column)::

    SELECT count(*), coalesce(sum(hashfloat8extended(hash_record_extended(ROW(t."id",
    t."price"::text COLLATE "C"), 0)::float8, 2024)), 0)::text FROM ONLY "reference"."rates"
    AS t WHERE t."id" >= 1 AND t."id" < 1001
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

#: Seed of the non-linear mix each row's hash goes through (any constant, the same everywhere).
MIX_SEED = 2024

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

#: The probe rows, column by column: ``(name, type, the value in each row)``. Every type hashed
#: by value and a few hashed through their text, with extremes, infinities, multi-byte text and
#: NULLs.
_PROBE_COLUMNS: tuple[tuple[str, str, tuple[object, ...]], ...] = (
    ("a", "smallint", (1, -32768, 0, None, None)),
    ("b", "integer", (2, -2147483648, None, 7, None)),
    ("c", "bigint", (3, 2**63 - 1, -(2**63), 4294967297, None)),
    ("d", "boolean", (True, False, None, True, None)),
    ("e", "date", ("2024-02-29", "infinity", "-infinity", None, None)),
    (
        "f",
        "timestamp without time zone",
        ("2024-02-29 12:34:56.789", "-infinity", "2000-01-01 01:11:34.967297", "2000-01-01", None),
    ),
    (
        "g",
        "timestamp with time zone",
        (
            "2024-02-29 12:34:56.789+00",
            "1999-12-31 23:59:59+00",
            "infinity",
            "2000-01-01 00:00+00",
            None,
        ),
    ),
    (
        "h",
        "uuid",
        (
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "00000000-0000-0000-0000-000000000000",
            None,
            None,
            None,
        ),
    ),
    ("i", "text", ("Grüße, Zoë — 東京 ✓", "", "long " * 40, None, None)),
    ("j", "character varying(9)", ("x", "long long", "", None, None)),
    ("k", "character(4)", ("ab", "", "abcd", None, None)),
    ("l", "bytea", (b"\x00\xff", b"", b"\\", None, None)),
    ("m", "numeric", ("1.50", "NaN", "-0.000001", "1e-20", None)),
    ("n", "jsonb", ('{"k": [1, 2.50, null], "é": "x"}', "[]", "null", '"s"', None)),
    ("o", "double precision", ("0.1", "-0", "-Infinity", "NaN", None)),
)


def probe_rows_query() -> sql.Composed:
    """The :func:`row_hash` (``record``) of every probe row, in one round trip.

    The rows go through the very expression verify runs on tables, so a server whose
    internal hashes, text renderings or mixing differ returns other values.
    """
    columns = [(name, typ) for name, typ, _ in _PROBE_COLUMNS]
    rows = sql.SQL(", ").join(
        sql.SQL("({})").format(
            sql.SQL(", ").join(
                sql.SQL("CAST({} AS {})").format(sql.Literal(value), sql.SQL(typ))
                for value, (_, typ) in zip(row, columns, strict=True)
            )
        )
        for row in zip(*(values for _, _, values in _PROBE_COLUMNS), strict=True)
    )
    names = sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns)
    return sql.SQL("SELECT {}::text FROM (VALUES {}) AS t({})").format(
        row_hash(columns, "record"), rows, names
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
        cur.execute(probe_rows_query())
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
    """A signed 64-bit hash of the row ``t``, from ``columns`` given as ``(name, type)``.

    ``record``: the row's ``hash_record_extended``, mixed non-linearly (module docstring).
    """
    if not columns:
        return sql.SQL("0::bigint")
    if hash_name == "record":
        cells = sql.SQL(", ").join(_cell(name, type_name) for name, type_name in columns)
        return sql.SQL("hashfloat8extended(hash_record_extended(ROW({}), 0)::float8, {})").format(
            cells, sql.Literal(MIX_SEED)
        )
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
