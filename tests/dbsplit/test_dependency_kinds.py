"""Each kind of cross-target dependency in its own small case, through `python -m dbsplit`.

Every case is a pair of schemas, `p_<case>` (routed to PRIMARY) and `d_<case>` (to DATA), in one
source database. `plan` must report each case's dependency as blocked (with its fix) or
resolved; `migrate` without the fixes must write nothing; with them (the `[resolve] drop`
entries plan named, the schema of the one that needs a routing change excluded, the untrusted
extension created on DATA by a superuser) it must succeed, verify, and each resolved object
must work on its target while each dropped one is absent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbsplit.freeze import freeze
from dbsplit.urls import parse
from standins.dbaas import Dbaas
from standins.postgres import PostgresServer
from tests.dbsplit.helpers import SplitEnv

SOURCE_SQL = """
CREATE EXTENSION earthdistance CASCADE;
CREATE SCHEMA p_rows; CREATE TABLE p_rows.t (id int PRIMARY KEY);
INSERT INTO p_rows.t SELECT generate_series(1, 10);

CREATE SCHEMA d_view; CREATE VIEW d_view.v AS SELECT id FROM p_rows.t;
CREATE SCHEMA d_mview; CREATE MATERIALIZED VIEW d_mview.m AS SELECT id FROM p_rows.t;
CREATE SCHEMA d_atomic;
CREATE FUNCTION d_atomic.n() RETURNS bigint LANGUAGE sql
    BEGIN ATOMIC SELECT count(*) FROM p_rows.t; END;
CREATE SCHEMA d_sql;
CREATE FUNCTION d_sql.n() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM p_rows.t';
CREATE SCHEMA d_body;
CREATE FUNCTION d_body.n() RETURNS bigint LANGUAGE plpgsql
    AS $$ BEGIN RETURN (SELECT count(*) FROM p_rows.t); END $$;

CREATE SCHEMA p_chain; CREATE SCHEMA d_chain;
CREATE FUNCTION p_chain.audit() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN INSERT INTO p_rows.t VALUES (NEW.id); RETURN NEW; END $$;
CREATE TABLE d_chain.t (id int PRIMARY KEY);
CREATE TRIGGER audit AFTER INSERT ON d_chain.t FOR EACH ROW EXECUTE FUNCTION p_chain.audit();

CREATE SCHEMA p_trig; CREATE SCHEMA d_trig;
CREATE FUNCTION p_trig.stamp() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN NEW.note := 'stamped'; RETURN NEW; END $$;
CREATE TABLE d_trig.t (id int PRIMARY KEY, note text);
INSERT INTO d_trig.t VALUES (1, 'before the trigger');
CREATE TRIGGER stamp BEFORE INSERT ON d_trig.t FOR EACH ROW EXECUTE FUNCTION p_trig.stamp();

CREATE SCHEMA p_def; CREATE SCHEMA d_def;
CREATE FUNCTION p_def.code() RETURNS text LANGUAGE sql AS $$ SELECT 'C-' || 7 $$;
CREATE TABLE d_def.t (id int PRIMARY KEY, code text DEFAULT p_def.code());
INSERT INTO d_def.t (id) VALUES (1);

CREATE SCHEMA p_seq; CREATE SCHEMA d_seq;
CREATE SEQUENCE p_seq.ticket START 500;
CREATE TABLE d_seq.t (id bigint PRIMARY KEY DEFAULT nextval('p_seq.ticket'), n int);
INSERT INTO d_seq.t (n) SELECT generate_series(1, 5);

CREATE SCHEMA p_shared; CREATE SCHEMA d_shared;
CREATE SEQUENCE p_shared.ids;
CREATE TABLE p_shared.t (id bigint PRIMARY KEY DEFAULT nextval('p_shared.ids'));
CREATE TABLE d_shared.t (id bigint PRIMARY KEY DEFAULT nextval('p_shared.ids'));

CREATE SCHEMA p_check; CREATE SCHEMA d_check;
CREATE FUNCTION p_check.even(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 % 2 = 0';
CREATE TABLE d_check.t (n int CONSTRAINT even CHECK (p_check.even(n)));
INSERT INTO d_check.t VALUES (2), (4);

CREATE SCHEMA p_type; CREATE SCHEMA d_type;
CREATE TYPE p_type.mood AS ENUM ('calm', 'busy');
CREATE DOMAIN p_type.positive AS int CHECK (VALUE > 0);
CREATE TYPE p_type.pair AS (x int, y int);
CREATE TABLE d_type.t (id int PRIMARY KEY, mood p_type.mood, moods p_type.mood[],
    n p_type.positive, xy p_type.pair);
INSERT INTO d_type.t VALUES (1, 'busy', '{calm,busy}', 3, ROW(1, 2));

CREATE SCHEMA p_coll; CREATE SCHEMA d_coll;
CREATE COLLATION p_coll.bytes (provider = libc, locale = 'C');
CREATE TABLE d_coll.t (name text COLLATE p_coll.bytes PRIMARY KEY);
INSERT INTO d_coll.t VALUES ('b'), ('B'), ('a');

CREATE SCHEMA p_ts; CREATE SCHEMA d_ts;
CREATE TEXT SEARCH CONFIGURATION p_ts.plain (COPY = pg_catalog.simple);
CREATE TABLE d_ts.t (id int PRIMARY KEY, body text);
CREATE INDEX t_body_fts ON d_ts.t USING gin (to_tsvector('p_ts.plain', body));
INSERT INTO d_ts.t VALUES (1, 'Quick Foxes');

CREATE SCHEMA d_ext; CREATE TABLE d_ext.t (id int PRIMARY KEY, at public.earth);
INSERT INTO d_ext.t VALUES (1, public.ll_to_earth(52.5, 13.4));

CREATE SCHEMA d_bodies; CREATE TYPE d_bodies.level AS ENUM ('low');
SET check_function_bodies = off;
CREATE FUNCTION d_bodies.lowest() RETURNS d_bodies.level LANGUAGE plpgsql
    AS $$ DECLARE v level := 'low'; BEGIN RETURN v; END $$;
RESET check_function_bodies;
CREATE FUNCTION d_bodies.plain() RETURNS int LANGUAGE plpgsql
    AS $$ DECLARE v integer := 1; BEGIN RETURN v; END $$;

CREATE SCHEMA p_icu; CREATE COLLATION p_icu.und (provider = icu, locale = 'und');
CREATE SCHEMA p_lang;
CREATE FUNCTION p_lang.inc(int) RETURNS int LANGUAGE internal IMMUTABLE STRICT AS 'int4inc';
"""

PRIMARY = [
    "p_rows", "p_chain", "p_trig", "p_def", "p_seq", "p_shared", "p_check", "p_type",
    "p_coll", "p_ts", "p_icu", "p_lang",
]  # fmt: skip


@dataclass(frozen=True)
class Case:
    """One dependency: what plan reports, and what is true on the target afterwards."""

    #: ``(kind, dependent, referenced, found_by, status)`` in `plan --json`'s dependencies,
    #: or a text that must appear in a blocker (for the targets' abilities).
    finding: tuple[str, str, str, str, str] | str
    drop: list[str] = field(default_factory=list)
    #: ``(target, SQL, expected rows)`` once migrated.
    check: tuple[str, str, list[tuple[Any, ...]]] | None = None


CASES = {
    "view": Case(
        ("view", "d_view.v", "p_rows.t", "catalog", "blocked"),
        ["d_view.v"],
        ("data", "SELECT to_regclass('d_view.v')", [(None,)]),
    ),
    "materialized view": Case(
        ("view", "d_mview.m", "p_rows.t", "catalog", "blocked"),
        ["d_mview.m"],
        ("data", "SELECT to_regclass('d_mview.m')", [(None,)]),
    ),
    "function, BEGIN ATOMIC": Case(
        ("function", "d_atomic.n()", "p_rows.t", "catalog", "blocked"),
        ["d_atomic.n"],
        ("data", "SELECT to_regprocedure('d_atomic.n()')", [(None,)]),
    ),
    "function, SQL string body (the issue's failure)": Case(
        ("function", "d_sql.n()", "p_rows.t", "body", "blocked"),
        ["d_sql.n"],
        ("data", "SELECT to_regprocedure('d_sql.n()')", [(None,)]),
    ),
    "function, PL/pgSQL": Case(
        ("function", "d_body.n()", "p_rows.t", "body", "blocked"),
        ["d_body.n()"],
        ("data", "SELECT to_regprocedure('d_body.n()')", [(None,)]),
    ),
    "trigger calling a function that reads the other target": Case(
        ("function", "p_chain.audit()", "p_rows.t", "body", "blocked"),
        ["d_chain.t.audit"],
        ("data", "SELECT count(*) FROM pg_trigger WHERE tgname = 'audit'", [(0,)]),
    ),
    "trigger calling a function of the other target": Case(
        ("trigger", "d_trig.t.stamp", "p_trig.stamp()", "catalog", "resolved"),
        check=("data", "INSERT INTO d_trig.t (id) VALUES (2) RETURNING note", [("stamped",)]),
    ),
    "default calling a function": Case(
        ("default", "d_def.t.code", "p_def.code()", "catalog", "resolved"),
        check=("data", "INSERT INTO d_def.t (id) VALUES (2) RETURNING code", [("C-7",)]),
    ),
    "default using a sequence of the other target": Case(
        ("default", "d_seq.t.id", "p_seq.ticket", "catalog", "resolved"),
        check=("data", "INSERT INTO d_seq.t (n) VALUES (6) RETURNING id", [(505,)]),
    ),
    "sequence used by both targets": Case(
        ("default", "d_shared.t.id", "p_shared.ids", "catalog", "blocked"),
    ),
    "check constraint calling a function": Case(
        ("check constraint", "d_check.t.even", "p_check.even(integer)", "catalog", "resolved"),
        check=("data", "SELECT p_check.even(3), p_check.even(8)", [(False, True)]),
    ),
    "enum, array of enum, domain, composite": Case(
        ("column type", "d_type.t", "p_type.mood", "catalog", "resolved"),
        check=(
            "data",
            "INSERT INTO d_type.t VALUES (2, 'calm', '{busy}', 1, ROW(3, 4))"
            " RETURNING mood::text, (xy).y",
            [("calm", 4)],
        ),
    ),
    "collation": Case(
        ("column type", "d_coll.t", "p_coll.bytes", "catalog", "resolved"),
        check=("data", "SELECT string_agg(name, '' ORDER BY name) FROM d_coll.t", [("Bab",)]),
    ),
    "text search configuration": Case(
        ("index", "d_ts.t.t_body_fts", "p_ts.plain", "catalog", "resolved"),
        check=(
            "data",
            "SELECT id FROM d_ts.t WHERE to_tsvector('p_ts.plain', body) @@ 'foxes'",
            [(1,)],
        ),
    ),
    "untrusted extension, not superuser": Case(
        "extension 'earthdistance' is needed on DATA and is not trusted",
        check=("data", "SELECT round(public.latitude(at)) FROM d_ext.t", [(52,)]),
    ),
    "ICU collation, server without ICU": Case(
        "collation p_icu.und uses the ICU provider, which PRIMARY's server was built without",
        ["p_icu.und"],
        ("primary", "SELECT count(*) FROM pg_collation WHERE collname = 'und'", [(0,)]),
    ),
    "function in an untrusted language, not superuser": Case(
        "function p_lang.inc(integer) is in a language only a superuser may use",
        ["p_lang.inc"],
        ("primary", "SELECT to_regprocedure('p_lang.inc(integer)')", [(None,)]),
    ),
}


@pytest.fixture(scope="module")
def kinds_source(source_pg: PostgresServer) -> Iterator[str]:
    name = source_pg.fresh_database(prefix="kinds")
    with source_pg.connect(name) as conn:
        conn.execute(SOURCE_SQL.encode())
    freeze(parse(source_pg.url(name)))  # migrate copies only a frozen source
    yield name
    source_pg.drop_database(name)


@dataclass
class Run:
    env: SplitEnv
    plan: dict[str, Any]
    blocked: Any
    migrated: Any
    schemas_after_block: dict[str, list[str]]


@pytest.fixture(scope="module")
def run(
    source_pg: PostgresServer,
    dbaas: Dbaas,
    data_pg: PostgresServer,
    kinds_source: str,
    data_owner: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Run]:
    """Plan, migrate without the fixes, then with them: once for every case."""
    primary = dbaas.server.fresh_database(owner=dbaas.admin_user)
    data = data_pg.fresh_database(owner=data_owner)
    env = SplitEnv(source_pg, dbaas, data_pg, kinds_source, primary, data)
    tmp = tmp_path_factory.mktemp("kinds")
    routing = f"[routing]\nprimary = {json.dumps(PRIMARY)}\n"
    bare = tmp / "bare.toml"
    bare.write_text(routing)
    plan = env.run("plan", "--json", "--config", str(bare))
    blocked = env.run("migrate", "--no-verify", "--config", str(bare))
    after = {w: _schemas(env, w) for w in ("primary", "data")}
    fixed = tmp / "fixed.toml"
    drops = [d for c in CASES.values() for d in c.drop]
    fixed.write_text(
        routing + f'exclude_schemas = ["d_shared"]\n\n[resolve]\ndrop = {json.dumps(drops)}\n'
    )
    data_pg.execute("CREATE EXTENSION earthdistance CASCADE", data)
    migrated = env.run("migrate", "--jobs", "2", "--config", str(fixed))
    try:
        yield Run(env, json.loads(plan.stdout), blocked, migrated, after)
    finally:
        dbaas.server.drop_database(primary)
        data_pg.drop_database(data)


def _schemas(env: SplitEnv, where: str) -> list[str]:
    rows = env.query(
        where,
        "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%%'"
        " AND nspname NOT IN ('information_schema', 'public') ORDER BY 1",
    )
    return [r[0] for r in rows]


@pytest.mark.parametrize("case", list(CASES))
def test_plan_reports_the_dependency(run: Run, case: str) -> None:
    finding = CASES[case].finding
    if isinstance(finding, str):
        assert any(finding in b for b in run.plan["blockers"]), run.plan["blockers"]
        return
    kind, dependent, referenced, how, status = finding
    found = [
        d
        for d in run.plan["dependencies"]
        if (d["kind"], d["dependent"]["name"], d["referenced"]["name"], d["found_by"])
        == (kind, dependent, referenced, how)
    ]
    assert [d["status"] for d in found] == [status], run.plan["dependencies"]
    assert found[0]["blocker"] is (status == "blocked")
    if status == "blocked":
        assert any(found[0]["action"] in b for b in run.plan["blockers"])
        assert "[resolve] drop" in found[0]["action"] or "same target" in found[0]["action"]
    else:
        assert found[0]["action"] == f"created on {found[0]['target'].upper()} too"


def test_unresolved_dependencies_block_and_nothing_is_written(run: Run) -> None:
    assert run.plan["ok"] is False
    assert run.blocked.returncode == 1, run.blocked.stderr
    err = run.blocked.stderr.strip().splitlines()[-1]
    assert err.startswith("dbsplit: error: nothing was written: ")
    assert run.schemas_after_block == {"primary": [], "data": []}


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c].check is not None])
def test_after_migrate_each_object_works_or_is_left_out(run: Run, case: str) -> None:
    assert run.migrated.returncode == 0, run.migrated.stderr
    assert "verify passed" in run.migrated.stderr
    check = CASES[case].check
    assert check is not None
    where, statement, expected = check
    with run.env.connect(where) as conn, conn.transaction(force_rollback=True):
        assert conn.execute(statement.encode()).fetchall() == expected


def test_a_copied_check_and_domain_still_refuse_bad_rows(run: Run) -> None:
    with run.env.connect("data") as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(b"INSERT INTO d_check.t VALUES (3)")
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(b"INSERT INTO d_type.t (id, n) VALUES (9, -1)")


def test_function_bodies_are_checked_unless_plan_reported_them(run: Run) -> None:
    """`lowest()` names its type unqualified (it runs with the app's search path): created
    with check_function_bodies off, as plan reported; `plain()` is checked."""
    off = run.plan["targets"]["data"]["resolution"]["check_function_bodies_off"]
    assert "d_bodies.lowest()" in off
    assert "d_bodies.plain()" not in off
    assert run.migrated.returncode == 0, run.migrated.stderr
    assert run.env.query(
        "data", "SELECT to_regprocedure('d_bodies.lowest()') IS NOT NULL, d_bodies.plain()"
    ) == [(True, 1)]


def test_bad_resolve_entries_are_one_line_exit_2(run: Run, tmp_path: Path) -> None:
    bad = tmp_path / "split.toml"
    routing = f"[routing]\nprimary = {json.dumps(PRIMARY)}\n"
    for text, message in (
        ('[resolve]\ndrop = ["d_view.nosuch"]\n', "resolve.drop entry 'd_view.nosuch' names no"),
        ('[resolve]\ndrop = "d_view.v"\n', "resolve.drop must be a list of names, got 'd_view.v'"),
        ('[resolve]\ndrop = ["v"]\n', "resolve.drop entry 'v' is not schema.name"),
        ("[resolve]\nkeep = []\n", "unknown key 'resolve.keep'"),
    ):
        bad.write_text(routing + text)
        proc = run.env.run("plan", "--config", str(bad))
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1
        assert message in lines[0], lines[0]
