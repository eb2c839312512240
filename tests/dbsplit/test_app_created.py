"""Targets whose tables the app's migrations already created: data only, after the check.

The targets get the source's DDL (as the app's migrations would make it: triggers, indexes,
foreign keys included, owned by the target's user), then `migrate` copies only rows: user
triggers disabled during the load (they exist and would change rows), foreign keys dropped,
recorded and re-added NOT VALID + VALIDATE.
"""

from __future__ import annotations

import json

import pytest

from dbsplit import pgtools, schema
from dbsplit.catalog import read_catalog
from dbsplit.connect import connect
from dbsplit.urls import parse
from tests.dbsplit.helpers import (
    DATA_SCHEMAS,
    PRIMARY_SCHEMAS,
    SplitEnv,
    assert_targets_equal_source,
    foreign_keys,
)


def create_like_app(env: SplitEnv) -> None:
    """Create every routed table on the targets, empty, from the source's DDL."""
    source = parse(env.source_url)
    with connect(source, what="source") as conn:
        cat = read_catalog(conn)
    tool = pgtools.find_tool("pg_dump")
    for where, schemas in (("primary", PRIMARY_SCHEMAS), ("data", DATA_SCHEMAS)):
        scripts = schema.dump(
            source,
            schemas,
            pg_dump=tool,
            snapshot=None,
            source_major=cat.server_version // 10000,
            exclude_tables=["public._prisma_migrations"],
        )
        with env.connect(where) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS citext")
            conn.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
            for name in schemas:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {name}".encode())
            conn.execute(scripts.preamble.encode())
            for entry in scripts.pre_data:
                conn.execute(entry.sql.encode())
            for _, group in scripts.post_groups:
                for entry in group:
                    conn.execute(entry.sql.encode())
            for entry in scripts.post_rest:
                conn.execute(entry.sql.encode())
            for fk in cat.foreign_keys:
                if fk.schema in schemas and fk.ref_schema in schemas:
                    conn.execute(
                        f"ALTER TABLE {fk.schema}.{fk.table} ADD CONSTRAINT {fk.name}"
                        f" {fk.definition}".encode()
                    )


MIGRATE = ("migrate", "--drop-cross-db-fks", "--jobs", "2", "--split-larger-than", "1MB")


def test_app_created_tables_get_rows_only(split_env: SplitEnv) -> None:
    create_like_app(split_env)
    fks_before = foreign_keys(split_env.connect("primary")), foreign_keys(split_env.connect("data"))
    plan = json.loads(split_env.run("plan", "--json", "--drop-cross-db-fks").stdout)
    assert plan["ok"] is True, plan["blockers"]
    assert plan["targets"]["primary"]["mode"] == "data-only"
    assert plan["targets"]["data"]["mode"] == "data-only"

    proc = split_env.run(*MIGRATE)
    assert proc.returncode == 0, proc.stderr
    assert_targets_equal_source(split_env)
    q = split_env.query
    # The app's triggers existed during the load and did not fire; they are enabled again.
    assert q("primary", "SELECT count(*) FROM config.users WHERE updated_at < '2000-01-01'") == [
        (0,)
    ]
    assert q("data", "SELECT count(*) FROM workspace.jobs WHERE attempts = 999") == [(0,)]
    assert q("data", "SELECT tgenabled FROM pg_trigger WHERE tgname = 'jobs_bump'") == [("O",)]
    # The foreign keys are back, validated, and no longer recorded as dropped.
    fks_after = foreign_keys(split_env.connect("primary")), foreign_keys(split_env.connect("data"))
    assert fks_after == fks_before
    assert all(fks_after[0].values())
    assert all(fks_after[1].values())
    assert q("data", "SELECT count(*) FROM _dbsplit.dropped_fks") == [(0,)]
    assert q("data", "SELECT sum(n)::int FROM workspace.job_counts") == [(2000,)]
    again = split_env.run(*MIGRATE)
    assert again.returncode == 0
    assert "already complete" in again.stderr


def test_rows_dbsplit_did_not_write_are_refused(split_env: SplitEnv) -> None:
    create_like_app(split_env)
    split_env.execute("data", "INSERT INTO reference.countries VALUES ('FR', 'France')")
    proc = split_env.run(*MIGRATE)
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()[-1]
    assert err == (
        "dbsplit: error: nothing was written: DATA table reference.countries holds rows "
        "dbsplit did not write: empty it first"
    )
    assert split_env.query("data", "SELECT to_regnamespace('_dbsplit')") == [(None,)]
    assert split_env.query("data", "SELECT count(*) FROM workspace.big") == [(0,)]


@pytest.mark.parametrize(
    ("ddl", "expected"),
    [
        (
            "ALTER TABLE workspace.big ALTER COLUMN label TYPE varchar(300)",
            "DATA table workspace.big.label: type character varying(300) on the target, text here",
        ),
        (
            "ALTER TABLE reference.countries DROP COLUMN area",
            "DATA table reference.countries.area: missing on the target",
        ),
        (
            "ALTER TABLE reference.countries ADD COLUMN code text NOT NULL",
            "DATA table reference.countries.code: extra NOT NULL column without default",
        ),
    ],
    ids=["type", "missing", "extra-not-null"],
)
def test_incompatible_columns_block(split_env: SplitEnv, ddl: str, expected: str) -> None:
    create_like_app(split_env)
    split_env.execute("data", ddl)
    plan = split_env.run("plan", "--drop-cross-db-fks")
    assert plan.returncode == 1
    assert expected in plan.stdout
    proc = split_env.run(*MIGRATE)
    assert proc.returncode == 1
    assert expected in proc.stderr
    assert split_env.query("data", "SELECT to_regnamespace('_dbsplit')") == [(None,)]


def test_some_tables_missing_blocks(split_env: SplitEnv) -> None:
    create_like_app(split_env)
    split_env.execute("primary", "DROP TABLE config.sessions")
    proc = split_env.run("plan", "--drop-cross-db-fks")
    assert proc.returncode == 1
    assert "PRIMARY has 4 of the 5 tables routed to it (missing: config.sessions)" in proc.stdout


#: What the app's migrations might have made differently, per target: one statement per kind
#: of definition difference verify and plan must name.
DRIFT = {
    "primary": (
        'ALTER TABLE customer.accounts ALTER COLUMN name TYPE text COLLATE "POSIX";'
        "ALTER TABLE config.roles ALTER COLUMN permissions SET DEFAULT '{read}';"
        "ALTER TABLE config.users ALTER COLUMN id SET GENERATED BY DEFAULT;"
        "ALTER TABLE customer.accounts DROP CONSTRAINT accounts_balance_check,"
        " ADD CONSTRAINT accounts_balance_check CHECK (balance >= -1000000);"
        "ALTER TABLE customer.contacts DROP CONSTRAINT contacts_account_id_fkey,"
        " ADD CONSTRAINT contacts_account_id_fkey FOREIGN KEY (account_id)"
        " REFERENCES customer.accounts (id);"
    ),
    "data": (
        "ALTER TABLE reference.countries ALTER COLUMN name DROP NOT NULL;"
        "ALTER TABLE reference.countries ADD CONSTRAINT countries_name_key UNIQUE (name);"
    ),
}

#: The differences DRIFT makes, as verify and plan word them (the target named first).
DRIFTED = [
    'PRIMARY customer.accounts.name: collation "default" on the source, "POSIX" on the target',
    "PRIMARY config.roles.permissions: default '{}'::text[] on the source,"
    " '{read}'::text[] on the target",
    "PRIMARY config.users.id: default GENERATED ALWAYS AS IDENTITY on the source,"
    " GENERATED BY DEFAULT AS IDENTITY on the target",
    "PRIMARY customer.accounts: constraint accounts_balance_check"
    " CHECK ((balance >= ('-1000'::integer)::numeric)) on the source,"
    " CHECK ((balance >= ('-1000000'::integer)::numeric)) on the target",
    "PRIMARY customer.contacts: constraint contacts_account_id_fkey"
    " FOREIGN KEY (account_id) REFERENCES customer.accounts(id) ON DELETE CASCADE on the source,"
    " FOREIGN KEY (account_id) REFERENCES customer.accounts(id) on the target",
    "DATA reference.countries.name: NOT NULL on the source, nullable on the target",
    "DATA reference.countries: constraint countries_name_key missing on the source,"
    " UNIQUE (name) on the target",
]


def test_definitions_the_app_made_differently_block_the_plan(split_env: SplitEnv) -> None:
    create_like_app(split_env)
    for where, ddl in DRIFT.items():
        split_env.execute(where, ddl)
    plan = json.loads(split_env.run("plan", "--json", "--drop-cross-db-fks").stdout)
    assert plan["ok"] is False
    listed = [
        f"{side.upper()} {line}"
        for side in ("primary", "data")
        for line in plan["targets"][side]["definition_differences"]
    ]
    assert sorted(listed) == sorted(DRIFTED)
    assert sorted(plan["blockers"]) == sorted(line.replace(" ", " table ", 1) for line in DRIFTED)
    proc = split_env.run(*MIGRATE)
    assert proc.returncode == 1
    assert "nothing was written" in proc.stderr
    assert split_env.query("primary", "SELECT to_regnamespace('_dbsplit')") == [(None,)]
    assert split_env.query("data", "SELECT to_regnamespace('_dbsplit')") == [(None,)]


def test_definitions_that_drift_after_the_copy_fail_verify(split_env: SplitEnv) -> None:
    create_like_app(split_env)
    assert split_env.run(*MIGRATE).returncode == 0  # migrate's own verify passed
    for where, ddl in DRIFT.items():
        split_env.execute(where, ddl)
    proc = split_env.run("verify", "--json")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert sorted(doc["failures"]) == sorted(DRIFTED)
    assert {t["status"] for t in doc["tables"]} == {"ok"}  # the rows themselves still match
