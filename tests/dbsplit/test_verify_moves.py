"""Verify sees values moved between rows.

A sum of row hashes that are linear in the column hashes (``hash_record_extended`` alone) is
blind to a value moved from one row to another: two customers' e-mails swapped, a value moved
onto a row where the column was NULL. Each case below moves the values of one column type
between two rows of a target, in a table with an integer key (bisection must name exactly the
two rows' key range) and in a table without a key (the table must be named), through
``python -m dbsplit verify`` as the deploy runs it, and again with the ``md5`` fallback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from dbsplit.config import SplitConfig
from dbsplit.urls import parse
from dbsplit.verify import VerifyReport, verify
from standins.dbaas import Dbaas
from standins.postgres import PostgresServer
from tests.dbsplit.helpers import SplitEnv

#: ``(case, column type, the value of row g)``: each value differs from its neighbour's.
MOVES: tuple[tuple[str, str, str], ...] = (
    ("text_c", 'text COLLATE "C"', "'user' || g || '@example.com'"),
    ("integer", "integer", "g * 7"),
    ("numeric", "numeric(12, 2)", "g * 10.25"),
    ("jsonb", "jsonb", "jsonb_build_object('g', g, 'tags', jsonb_build_array(g, 'x'))"),
    ("timestamptz", "timestamptz", "timestamptz '2024-03-01 12:00+01' + g * interval '37 min'"),
    ("bytea", "bytea", "decode(md5(g::text), 'hex')"),
    ("onto_null", "text", "CASE WHEN g % 2 = 1 THEN 'note ' || g END"),
    ("text_array", "text[]", "ARRAY['t' || g, NULL, 'u']"),
    ("enum", "{schema}.mood", "(enum_range(NULL::{schema}.mood))[1 + g % 3]"),
    ("bigint", "bigint", "g * 4294967296"),
)

#: Rows per move in the keyed table: the move swaps rows 4k+1 and 4k+2 (4k+1 is odd, so the
#: ``onto_null`` value lands on a NULL), rows 4k+3 and 4k+4 stay, so no two moves touch.
STRIDE = 4
KEYLESS_ROWS = 6


def _ddl(schema: str) -> str:
    return f"CREATE SCHEMA {schema}; CREATE TYPE {schema}.mood AS ENUM ('sad', 'ok', 'happy');"


def _keyed(schema: str) -> str:
    """One table, one column per move, ``STRIDE`` rows per move."""
    cols = ", ".join(f"c_{case} {typ.format(schema=schema)}" for case, typ, _ in MOVES)
    values = ", ".join(value.format(schema=schema) for _, _, value in MOVES)
    return (
        f"CREATE TABLE {schema}.accounts (id integer PRIMARY KEY, {cols});"
        f"INSERT INTO {schema}.accounts SELECT g, {values}"
        f" FROM generate_series(1, {STRIDE * len(MOVES)}) g;"
    )


def _keyless(schema: str) -> str:
    """One table per move, without any key: ``(tag, v)``."""
    out = []
    for case, typ, value in MOVES:
        table = f"{schema}.moved_{case}"
        out.append(
            f"CREATE TABLE {table} (tag text, v {typ.format(schema=schema)});"
            f"INSERT INTO {table} SELECT 'row ' || g, {value.format(schema=schema)}"
            f" FROM generate_series(1, {KEYLESS_ROWS}) g;"
        )
    return "".join(out)


def _swap(table: str, column: str, key: str, a: str, b: str) -> str:
    """Swap ``column`` between the rows whose ``key`` is ``a`` and ``b`` (SQL literals)."""
    return (
        f"UPDATE {table} AS t SET {column} = o.{column} FROM {table} AS o"
        f" WHERE (t.{key}, o.{key}) IN (({a}, {b}), ({b}, {a}));"
    )


#: The keyed table is on PRIMARY (customer), the keyless ones on DATA (workspace).
SOURCE_SQL = _ddl("customer") + _keyed("customer") + _ddl("workspace") + _keyless("workspace")
PRIMARY_SQL = _ddl("customer") + _keyed("customer")
DATA_SQL = _ddl("workspace") + _keyless("workspace")


def _moves_on_targets() -> tuple[str, str]:
    keyed = "".join(
        _swap("customer.accounts", f"c_{case}", "id", str(STRIDE * k + 1), str(STRIDE * k + 2))
        for k, (case, _, _) in enumerate(MOVES)
    )
    keyless = "".join(
        _swap(f"workspace.moved_{case}", "v", "tag", "'row 1'", "'row 2'") for case, _, _ in MOVES
    )
    return keyed, keyless


@pytest.fixture
def moved(
    source_pg: PostgresServer,
    dbaas: Dbaas,
    data_pg: PostgresServer,
    make_db: Callable[..., str],
    data_owner: str,
) -> SplitEnv:
    """A source and targets equal to it, then each move applied on the targets."""
    env = SplitEnv(
        source_pg=source_pg,
        dbaas=dbaas,
        data_pg=data_pg,
        source=make_db(source_pg),
        primary=make_db(dbaas),
        data=make_db(data_pg, owner=data_owner),
    )
    env.execute("source", SOURCE_SQL + "ANALYZE;")
    env.execute("primary", PRIMARY_SQL)
    env.execute("data", DATA_SQL)
    check = env.run("verify", "--json")
    assert check.returncode == 0, check.stdout + check.stderr
    keyed, keyless = _moves_on_targets()
    env.execute("primary", keyed)
    env.execute("data", keyless)
    return env


def _check_report(doc: dict[str, Any]) -> None:
    """Every move is reported (the keyed one by exactly its two rows' key range), nothing else."""
    tables = {t["schema"] + "." + t["name"]: t for t in doc["tables"]}
    keyed = tables["customer.accounts"]
    found = [(r["lo"], r["hi"]) for r in keyed["ranges"]]
    expected = [(STRIDE * k + 1, STRIDE * k + 3) for k in range(len(MOVES))]
    missed = [MOVES[k][0] for k, r in enumerate(expected) if r not in found]
    assert not missed, f"moves not seen in the keyed table: {missed} (ranges found: {found})"
    assert found == expected
    assert [(r["source_rows"], r["target_rows"]) for r in keyed["ranges"]] == [(2, 2)] * len(MOVES)
    unseen = [c for c, _, _ in MOVES if tables[f"workspace.moved_{c}"]["status"] != "differs"]
    assert not unseen, f"moves not seen in the keyless tables: {unseen}"
    total = STRIDE * len(MOVES)
    shown = ", ".join(f"id [{lo}, {hi}) (2 vs 2 rows)" for lo, hi in expected)
    assert sorted(doc["failures"]) == sorted(
        [
            f"PRIMARY customer.accounts differs in key ranges {shown} "
            f"(source {total} rows, target {total} rows)",
            *(
                f"DATA workspace.moved_{case} differs "
                f"(source {KEYLESS_ROWS} rows, target {KEYLESS_ROWS} rows)"
                for case, _, _ in MOVES
            ),
        ]
    )


def test_values_moved_between_rows_are_reported_by_the_cli(moved: SplitEnv) -> None:
    proc = moved.run("verify", "--json")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["hash"] == "record"
    _check_report(doc)


def _verify(env: SplitEnv) -> VerifyReport:
    return verify(
        source=parse(env.source_url),
        primary=parse(env.primary_url),
        data=parse(env.data_url),
        config=SplitConfig(),
    )


def test_the_md5_fallback_reports_moved_values_too(
    moved: SplitEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers: list[int] = []

    def differing_probe(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[str, ...]:
        servers.append(1)
        return (str(len(servers)),)

    monkeypatch.setattr("dbsplit.verify.probe_values", differing_probe)
    report = _verify(moved)
    assert len(servers) == 3
    doc = report.to_json()
    assert doc["hash"] == "md5"
    _check_report(doc)
