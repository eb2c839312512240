"""Pure parts: plan logic, URL resolution, DDL parsing, child process arguments, copy parts."""

from __future__ import annotations

import argparse

import pytest

from dbsplit import cli, pgtools, schema
from dbsplit.catalog import Catalog, Column, ForeignKey, Table
from dbsplit.config import SplitConfig, Target
from dbsplit.copy import Part, copy_in_query, copy_out_query, make_parts, split_bounds
from dbsplit.errors import ConfigError, UsageError
from dbsplit.plan import MODE_CREATE, MODE_DATA_ONLY, TargetState, build_plan
from dbsplit.urls import parse

SECRET = "pa:ss@w/rd"


def col(name: str, typ: str = "integer", **kw: object) -> Column:
    values: dict[str, object] = {
        "not_null": False,
        "generated": False,
        "identity": "",
    }
    values.update(kw)
    return Column(name, typ, **values)  # type: ignore[arg-type]


def table(schema: str, name: str, *cols: Column, kind: str = "r", size: int = 8192) -> Table:
    return Table(
        schema=schema,
        name=name,
        columns=cols or (col("id"),),
        primary_key=("id",),
        kind=kind,
        parent=None,
        est_rows=10,
        size_bytes=size,
        relation_bytes=size,
    )


def catalog(*tables: Table, fks: tuple[ForeignKey, ...] = ()) -> Catalog:
    return Catalog(
        tables=tables,
        sequences=(),
        foreign_keys=fks,
        schemas=tuple(sorted({t.schema for t in tables})),
        extensions=(),
    )


USERS = table("config", "users", col("id"), col("email", "text"))
JOBS = table("workspace", "jobs", col("id"), col("user_id"))
MIGRATIONS = table("public", "_prisma_migrations", col("id", "character varying(36)"))
CROSS = ForeignKey("workspace", "jobs", "jobs_user_fk", "config", "users", "FOREIGN KEY ...")
SOURCE = catalog(USERS, JOBS, MIGRATIONS, fks=(CROSS,))
EMPTY = TargetState(catalog=catalog())


def test_routing_and_cross_database_fk_blocks() -> None:
    plan = build_plan(SOURCE, SplitConfig(), {Target.PRIMARY: EMPTY, Target.DATA: EMPTY})
    routes = {t.qualname: (t.target, t.skipped) for t in plan.tables}
    assert routes == {
        "config.users": (Target.PRIMARY, ""),
        "workspace.jobs": (Target.DATA, ""),
        "public._prisma_migrations": (Target.DATA, "excluded"),
    }
    assert plan.cross_fks == (CROSS,)
    assert not plan.ok
    assert plan.blockers[0].startswith("foreign key 'jobs_user_fk' on workspace.jobs")
    assert plan.target(Target.DATA).mode == MODE_CREATE
    assert "BLOCKER" in plan.render()
    assert plan.to_json()["cross_database_fks"][0]["from"] == "workspace.jobs"

    dropped = build_plan(
        SOURCE,
        SplitConfig(),
        {Target.PRIMARY: EMPTY, Target.DATA: EMPTY},
        drop_cross_db_fks=True,
    )
    assert dropped.ok
    assert dropped.fks_for(Target.DATA) == ()
    assert [t.qualname for t in dropped.tables_for(Target.DATA)] == ["workspace.jobs"]


def test_unknown_schema_in_config_is_a_config_error() -> None:
    config = SplitConfig(primary_schemas=("config", "nosuch"), source_file="split.toml")
    with pytest.raises(ConfigError, match="schema 'nosuch' named in the config"):
        build_plan(SOURCE, config, {})


def test_existing_tables_data_only_and_foreign_rows() -> None:
    target = TargetState(
        catalog=catalog(table("workspace", "jobs", col("id"), col("user_id", "bigint"))),
        tables_with_rows=frozenset({"workspace.jobs"}),
    )
    plan = build_plan(SOURCE, SplitConfig(), {Target.DATA: target}, drop_cross_db_fks=True)
    assert plan.target(Target.DATA).mode == MODE_DATA_ONLY
    assert plan.blockers == (
        "DATA table workspace.jobs.user_id: type bigint on the target, integer here",
        "DATA table workspace.jobs holds rows dbsplit did not write: empty it first",
    )
    recorded = TargetState(
        catalog=target.catalog,
        tables_with_rows=frozenset({"workspace.jobs"}),
        tables_recorded=frozenset({"workspace.jobs"}),
    )
    plan = build_plan(SOURCE, SplitConfig(), {Target.DATA: recorded}, drop_cross_db_fks=True)
    assert len(plan.blockers) == 1  # only the type


def test_generated_and_identity_columns() -> None:
    src = table("config", "t", col("id", identity="a"), col("g", "text", generated=True))
    assert [c.name for c in src.copy_columns] == ["id"]
    tgt = table("config", "t", col("id", identity="d"), col("g", "text"))
    plan = build_plan(
        catalog(src),
        SplitConfig(),
        {Target.PRIMARY: TargetState(catalog=catalog(tgt))},
    )
    assert plan.blockers == ("PRIMARY table config.t.g: generated only on the source",)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "no DATA database URL: pass --data or set DATA_DATABASE_URL"),
        (
            {"DATA_DATABASE_URL": "mysql://u:x@h/db"},
            "malformed DATA URL mysql://u:***@h/db: scheme must be postgresql://",
        ),
    ],
)
def test_resolve_url_errors(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    monkeypatch.delenv("DATA_DATABASE_URL", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(UsageError) as info:
        cli.resolve_url(None, "data")
    assert str(info.value) == message


def test_primary_url_prefers_direct_and_refuses_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = "postgresql://doadmin:s3cret@db.example.com:25061/handled-pool?sslmode=require&pgbouncer=true"
    monkeypatch.setenv("PRIMARY_DATABASE_URL", pool)
    monkeypatch.delenv("PRIMARY_DIRECT_URL", raising=False)
    with pytest.raises(UsageError) as info:
        cli.resolve_url(None, "primary")
    text = str(info.value)
    assert "s3cret" not in text
    assert "postgresql://doadmin:***@db.example.com:25060/<database>?sslmode=require" in text
    assert "PRIMARY_DIRECT_URL" in text
    monkeypatch.setenv("PRIMARY_DIRECT_URL", "postgresql://doadmin:s3cret@db.example.com:25060/h")
    assert cli.resolve_url(None, "primary").port == 25060
    assert cli.resolve_url("postgresql://x@h/explicit", "primary").dbname == "explicit"


def test_sizes_and_jobs() -> None:
    assert cli._size("64MB") == 64 * 1024**2
    assert cli._size("256kB") == 256 * 1024
    assert cli._size("1000") == 1000
    with pytest.raises(argparse.ArgumentTypeError):
        cli._size("lots")
    with pytest.raises(argparse.ArgumentTypeError):
        cli._positive("0")


def test_main_prints_one_line_and_returns_the_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OLD_DATABASE_URL", raising=False)
    assert cli.main(["plan"]) == 2
    err = capsys.readouterr().err
    assert err == "dbsplit: error: no source database URL: pass --source or set OLD_DATABASE_URL\n"


DUMP = """--
-- PostgreSQL database dump
--

\\restrict abc123

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: users users_pkey; Type: CONSTRAINT; Schema: config; Owner: -
--

ALTER TABLE ONLY config.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);


--
-- Name: users_lower_idx; Type: INDEX; Schema: config; Owner: -
--

CREATE INDEX users_lower_idx ON config.users USING btree (lower(name));


--
-- Name: users touch; Type: TRIGGER; Schema: config; Owner: -
--

CREATE TRIGGER touch BEFORE INSERT ON config.users FOR EACH ROW EXECUTE FUNCTION config.f();


--
-- Name: jobs jobs_user_fk; Type: FK CONSTRAINT; Schema: config; Owner: -
--

ALTER TABLE ONLY config.jobs
    ADD CONSTRAINT jobs_user_fk FOREIGN KEY (user_id) REFERENCES config.users(id);

\\unrestrict abc123
"""


def test_split_entries_groups_by_table_and_drops_meta_commands() -> None:
    preamble, entries = schema.split_entries(DUMP)
    assert "SET statement_timeout = 0;" in preamble
    assert "restrict" not in preamble
    assert [(e.type, e.name) for e in entries] == [
        ("CONSTRAINT", "users users_pkey"),
        ("INDEX", "users_lower_idx"),
        ("TRIGGER", "users touch"),
        ("FK CONSTRAINT", "jobs jobs_user_fk"),
    ]
    assert all("restrict" not in e.sql for e in entries)
    groups = schema._group(e for e in entries if e.type in ("CONSTRAINT", "INDEX"))
    assert [(k, len(v)) for k, v in groups] == [("config.users", 2)]


def test_child_args_keep_the_password_out_of_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "inherited")
    url = parse(
        "postgresql://doadmin:pa%3Ass%40w%2Frd@db.example.com:25060/handled"
        "?sslmode=verify-full&sslcert=/etc/ca.crt&pgbouncer=false"
    )
    dbname, env = pgtools.child_args(url)
    assert SECRET not in dbname
    assert "password" not in dbname
    assert "sslrootcert=/etc/ca.crt" in dbname
    # pg_dump is bounded as dbsplit's own connections are (dbsplit.connect.CLIENT_BOUNDS).
    for bound in ("keepalives=1", "keepalives_idle=10", "tcp_user_timeout=20000"):
        assert bound in dbname.split()
    assert env["PGPASSWORD"] == SECRET
    seen: list[list[str]] = []

    def fake_run(argv: list[str], env: dict[str, str], *, what: str, server: object) -> bytes:
        seen.append(list(argv))
        assert env["PGPASSWORD"] == SECRET
        return b""

    monkeypatch.setattr(pgtools, "run", fake_run)
    schema.dump(
        url,
        ["config"],
        pg_dump=pgtools.Tool("/usr/bin/pg_dump", 15),
        snapshot="0000-1",
        source_major=15,
        exclude_tables=["public._prisma_migrations"],
    )
    assert len(seen) == 2
    for argv in seen:
        assert not any(SECRET in a for a in argv)
        assert '--schema="config"' in argv
        assert '--exclude-table="public"."_prisma_migrations"' in argv
        assert "--snapshot=0000-1" in argv
        assert "--lock-wait-timeout=60s" in argv


def test_copy_parts_and_queries() -> None:
    big = table("workspace", "big", col("id"), col("g", "text", generated=True), size=10 * 8192)
    bounds = split_bounds(big, 3 * 8192)
    assert bounds == [0, 3, 6, 9]
    parts = make_parts(Target.DATA, big, bounds, binary=True, disable_triggers=False)
    assert [(p.lo, p.hi) for p in parts] == [(0, 3), (3, 6), (6, 9), (9, None)]
    assert parts[0].columns == ("id",)
    out = copy_out_query(parts[1]).as_string()
    assert out == (
        'COPY (SELECT "id" FROM ONLY "workspace"."big" WHERE ctid >= \'(3,0)\'::tid'
        " AND ctid < '(6,0)'::tid) TO STDOUT (FORMAT BINARY)"
    )
    assert "FREEZE" not in copy_in_query(parts[1]).as_string()
    whole: Part = make_parts(Target.DATA, big, [0], binary=False, disable_triggers=False)[0]
    assert copy_out_query(whole).as_string() == (
        'COPY "workspace"."big" ("id") TO STDOUT (FORMAT TEXT)'
    )
    assert copy_in_query(whole).as_string() == (
        'COPY "workspace"."big" ("id") FROM STDIN (FORMAT TEXT, FREEZE)'
    )
    triggered = make_parts(Target.DATA, big, bounds, binary=True, disable_triggers=True)
    assert len(triggered) == 1


def test_column_options_no_target_knows_are_dropped() -> None:
    from dbsplit.schema import portable_column_options

    stamp = "ALTER TABLE ONLY config.users ALTER COLUMN id SET (pg_attver=26534744);"
    assert portable_column_options(stamp) is None
    mixed = "ALTER TABLE ONLY config.users ALTER COLUMN id SET (n_distinct=-1, pg_attver=2);"
    assert portable_column_options(mixed) == (
        "ALTER TABLE ONLY config.users ALTER COLUMN id SET (n_distinct=-1);"
    )
    assert portable_column_options("CREATE TABLE x (a int);") == "CREATE TABLE x (a int);"
