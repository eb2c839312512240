"""Every table's row count and checksum in one database: ``dbsplit checksums``.

What verify computes per table (:mod:`dbsplit.checksum`), for a single database, so that a
copy made another way can be checked against it later: the deploy records the frozen source's
checksums with its backup, and checks a restored database against them before it is swapped
in. Both sides are computed on the same server, so PostgreSQL's own row hashes are used.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

from dbsplit import freeze as freezing
from dbsplit.catalog import read_catalog
from dbsplit.checksum import checksum_query, run_sum
from dbsplit.connect import connect
from dbsplit.errors import SplitError
from dbsplit.urls import PgUrl


def checksums(url: PgUrl, *, jobs: int = 2) -> dict[str, Any]:
    """``{"tables": {"schema.table": {"rows": n, "sum": "..."}}, "position": ...}`` for every
    table holding rows (partition leaves, not their parents), read in one snapshot each."""
    with connect(url, what="database", autocommit=True, short_statements=True) as conn:
        catalog = read_catalog(conn)
        position = freezing.write_position(conn)
    tables = [t for t in catalog.tables if t.has_data]

    def one(table: Any) -> tuple[str, dict[str, Any]]:
        with connect(url, what="database") as conn:
            conn.read_only = True
            columns = [(c.name, c.type) for c in table.columns]
            query = checksum_query(table.schema, table.name, columns, hash_name="record")
            try:
                with conn.cursor() as cur:
                    found = run_sum(cur, query)
            except psycopg.Error as exc:
                raise SplitError(f"cannot checksum {table.qualname}: {exc}") from None
        return table.qualname, {"rows": found.rows, "sum": str(found.total)}

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        sums = dict(pool.map(one, tables))
    return {"hash": "record", "tables": sums, "position": position.to_json()}


def differences(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """How ``found`` differs from ``expected`` (two :func:`checksums` results), one line each."""
    want, have = expected.get("tables", {}), found.get("tables", {})
    out = [f"{t} is missing" for t in sorted(set(want) - set(have))]
    out += [f"{t} was not expected" for t in sorted(set(have) - set(want))]
    for t in sorted(set(want) & set(have)):
        if want[t] != have[t]:
            out.append(
                f"{t} differs ({have[t]['rows']} rows, expected {want[t]['rows']}"
                + (", same count, other content" if want[t]["rows"] == have[t]["rows"] else "")
                + ")"
            )
    return out
