"""The end-to-end harness (`SplitEnv`) and comparisons: table contents, sequences, keys."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from standins.dbaas import Dbaas
from standins.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
EDGE_SQL = Path(__file__).with_name("edge_cases.sql")
DATA_OWNER = "dataowner"
DATA_OWNER_PASSWORD = "data-Owner-pw-7f3a"


@dataclass
class SplitEnv:
    """A source and two fresh targets, and ways to run dbsplit and SQL against them."""

    source_pg: PostgresServer
    dbaas: Dbaas
    data_pg: PostgresServer
    source: str
    primary: str
    data: str
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def source_url(self) -> str:
        return self.source_pg.url(self.source)

    @property
    def primary_url(self) -> str:
        return self.dbaas.direct_url(self.primary)

    @property
    def data_url(self) -> str:
        return self.data_pg.url(self.data, user=DATA_OWNER, password=DATA_OWNER_PASSWORD)

    def passwords(self) -> list[str]:
        return [
            self.source_pg.superuser_password,
            self.dbaas.admin_password,
            DATA_OWNER_PASSWORD,
        ]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(
            OLD_DATABASE_URL=self.source_url,
            PRIMARY_DIRECT_URL=self.primary_url,
            DATA_DATABASE_URL=self.data_url,
            PYTHONPATH=str(ROOT),
        )
        env.update(self.extra_env)
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "dbsplit", *args]

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run dbsplit to completion; no password may show in its output."""
        proc = subprocess.run(
            self.argv(*args),
            env=env if env is not None else self.env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        for pw in self.passwords():
            assert pw not in proc.stdout
            assert pw not in proc.stderr
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            env=self.env(),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def connect(self, where: str) -> psycopg.Connection[tuple[Any, ...]]:
        url = {"source": self.source_url, "primary": self.primary_url, "data": self.data_url}
        return psycopg.connect(url[where], autocommit=True)

    def query(self, where: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.connect(where) as conn:
            return conn.execute(statement.encode(), params).fetchall()

    def execute(self, where: str, statement: str) -> None:
        with self.connect(where) as conn:
            conn.execute(statement.encode())


PRIMARY_SCHEMAS = ("config", "customer")
DATA_SCHEMAS = ("integration", "public", "reference", "workspace")
EXCLUDED = {"public._prisma_migrations"}


def leaf_tables(conn: psycopg.Connection[Any], schemas: tuple[str, ...]) -> list[str]:
    rows = conn.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'r' AND n.nspname = ANY(%s) ORDER BY 1",
        (list(schemas),),
    ).fetchall()
    return [r[0] for r in rows]


def fingerprint(conn: psycopg.Connection[Any], qualname: str) -> tuple[int, str]:
    """Row count and an md5 of every row's text, in a fixed order."""
    conn.execute("SET TimeZone = 'UTC'; SET extra_float_digits = 3; SET DateStyle = 'ISO, YMD'")
    schema, name = qualname.split(".")
    row = conn.execute(
        sql.SQL(
            "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), ''))"
            " FROM ONLY {} AS t"
        ).format(sql.Identifier(schema, name))
    ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def sequences(conn: psycopg.Connection[Any], schemas: tuple[str, ...]) -> dict[str, Any]:
    names = conn.execute(
        "SELECT schemaname, sequencename FROM pg_sequences WHERE schemaname = ANY(%s)",
        (list(schemas),),
    ).fetchall()
    out = {}
    for schema, name in names:
        row = conn.execute(
            sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(schema, name))
        ).fetchone()
        out[f"{schema}.{name}"] = row
    return out


def foreign_keys(conn: psycopg.Connection[Any]) -> dict[str, bool]:
    rows = conn.execute(
        "SELECT conname, convalidated FROM pg_constraint c"
        " JOIN pg_namespace n ON n.oid = c.connamespace"
        " WHERE contype = 'f' AND conparentid = 0 AND n.nspname NOT LIKE 'pg\\_%%'"
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def assert_targets_equal_source(env: SplitEnv) -> None:
    """Every routed table's rows, and every sequence, equal the source's."""
    with env.connect("source") as src, env.connect("primary") as prim, env.connect("data") as data:
        for schemas, tgt, other in ((PRIMARY_SCHEMAS, prim, data), (DATA_SCHEMAS, data, prim)):
            source_tables = [t for t in leaf_tables(src, schemas) if t not in EXCLUDED]
            assert leaf_tables(tgt, schemas) == source_tables
            assert leaf_tables(other, schemas) == []
            for table in source_tables:
                assert fingerprint(tgt, table) == fingerprint(src, table), table
            assert sequences(tgt, schemas) == sequences(src, schemas)
