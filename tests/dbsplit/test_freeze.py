"""The freeze no client can undo, each way around it tried for real.

A small source of its own per test (the edge-case source is shared and stays frozen). The app's
role owns the database and its tables, as on the VPS; another role has been granted writes;
the freeze is done as the superuser (the deploy's SOURCE_ADMIN_URL). Each test opens the
sessions a careless or clever client would, and shows the write refused or caught.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from standins.postgres import PostgresServer
from tests.dbsplit.helpers import SplitEnv

APP = "frz_app"
APP_PASSWORD = "frz-App-pw-31c9"
OTHER = "frz_other"
OTHER_PASSWORD = "frz-Other-pw-8d2e"
ROOT = "frz_root"
ROOT_PASSWORD = "frz-Root-pw-55aa"


@dataclass
class Source:
    pg: PostgresServer
    name: str

    def url(self, user: str | None = None, password: str | None = None, **params: str) -> str:
        return self.pg.url(self.name, user=user, password=password, **params)

    def rows(self) -> int:
        with self.pg.connect(self.name) as conn:
            row = conn.execute("SELECT count(*) FROM shop.orders").fetchone()
        return int(row[0]) if row else -1


@pytest.fixture
def source(source_pg: PostgresServer, make_db: Callable[..., str]) -> Iterator[Source]:
    for role, pw in ((APP, APP_PASSWORD), (OTHER, OTHER_PASSWORD)):
        source_pg.create_role(role, pw)
    source_pg.create_role(ROOT, ROOT_PASSWORD, superuser=True)
    name = make_db(source_pg, owner=APP)
    with psycopg.connect(source_pg.url(name, user=APP, password=APP_PASSWORD)) as conn:
        conn.execute(
            "CREATE SCHEMA shop; CREATE TABLE shop.orders (id serial PRIMARY KEY, note text);"
            "INSERT INTO shop.orders (note) SELECT 'n' || g FROM generate_series(1, 50) g;"
            f"GRANT USAGE ON SCHEMA shop TO {OTHER};"
            f"GRANT INSERT, UPDATE, DELETE, SELECT ON shop.orders TO {OTHER};"
            f"GRANT USAGE ON SEQUENCE shop.orders_id_seq TO {OTHER}"
        )
    yield Source(source_pg, name)
    with source_pg.connect() as conn:
        for role in (APP, OTHER, ROOT):
            conn.execute(sql.SQL("ALTER ROLE {} RESET ALL").format(sql.Identifier(role)))


def run(env: SplitEnv, src: Source, *args: str) -> tuple[int, str, str]:
    env.extra_env["OLD_DATABASE_URL"] = src.url()
    proc = env.run(*args)
    return proc.returncode, proc.stdout, proc.stderr


def status(env: SplitEnv, src: Source) -> dict[str, object]:
    code, out, err = run(env, src, "status", "--json")
    assert code == 0, err
    source = json.loads(out)["source"]
    assert isinstance(source, dict)
    return source


def test_sessions_from_before_are_ended_and_no_role_can_connect_or_write(
    split_env: SplitEnv, source: Source
) -> None:
    before_app = psycopg.connect(source.url(APP, APP_PASSWORD), autocommit=True)
    before_other = psycopg.connect(source.url(OTHER, OTHER_PASSWORD), autocommit=True)
    before_other.execute("SET default_transaction_read_only = off")
    code, out, err = run(split_env, source, "freeze")
    assert code == 0, err
    assert out.strip() == (
        f"database {source.name!r} is now frozen (no role may connect but superusers);"
        " 2 other session(s) terminated"
    )
    for conn in (before_app, before_other):  # opened before the freeze: ended, cannot write
        with pytest.raises(psycopg.OperationalError):
            conn.execute("INSERT INTO shop.orders (note) VALUES ('late')")
        conn.close()
    # The owner with every trick a client has, and another role: refused at the door.
    for url in (
        source.url(APP, APP_PASSWORD, options="-c default_transaction_read_only=off"),
        source.url(OTHER, OTHER_PASSWORD),
    ):
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            psycopg.connect(url, connect_timeout=5)
    with psycopg.connect(source.pg.url("postgres")) as conn:  # a role setting does not help
        conn.execute(
            sql.SQL("ALTER ROLE {} SET default_transaction_read_only = off").format(
                sql.Identifier(APP)
            )
        )
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(source.url(APP, APP_PASSWORD), connect_timeout=5)
    assert source.rows() == 50
    found = status(split_env, source)
    assert found["ok"] is True, found
    assert found["can_connect"] == []

    again = run(split_env, source, "freeze")
    assert again[0] == 0, again
    assert "already frozen" in again[1], again
    code, out, err = run(split_env, source, "unfreeze")
    assert (code, out.strip()) == (0, f"database {source.name!r} is now writable"), err
    with psycopg.connect(source.url(OTHER, OTHER_PASSWORD), autocommit=True) as conn:
        conn.execute("INSERT INTO shop.orders (note) VALUES ('after')")
    with psycopg.connect(source.url(APP, APP_PASSWORD), autocommit=True) as conn:
        conn.execute("INSERT INTO shop.orders (note) VALUES ('after')")
    assert source.rows() == 52
    with source.pg.connect() as conn:
        acl = conn.execute("SELECT datacl::text FROM pg_database WHERE datname = %s", [source.name])
        row = acl.fetchone()
    assert row is not None
    assert "=Tc/" in str(row[0]), row  # PUBLIC has CONNECT (and TEMP) back
    assert "CTc/" in str(row[0]), row  # and so has the owner


def test_a_superuser_write_after_the_freeze_is_caught(split_env: SplitEnv, source: Source) -> None:
    assert run(split_env, source, "freeze")[0] == 0
    first = status(split_env, source)
    assert first["ok"] is True
    # A superuser from outside the deploy: it may connect, turns read-only off and writes.
    with psycopg.connect(source.url(ROOT, ROOT_PASSWORD), autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")
        conn.execute("UPDATE shop.orders SET note = 'changed' WHERE id = 7")
        during = status(split_env, source)  # while it stays connected: another session
        assert during["ok"] is False
        assert any(f"role {ROOT}" in p for p in during["problems"]), during  # type: ignore[attr-defined]
    after = status(split_env, source)  # gone: the check is clean, but the position moved
    assert after["ok"] is True
    assert after["position"] != first["position"]
    assert after["position"]["writes"] == first["position"]["writes"] + 1  # type: ignore[index]


def test_truncate_by_a_superuser_moves_the_position(split_env: SplitEnv, source: Source) -> None:
    assert run(split_env, source, "freeze")[0] == 0
    first = status(split_env, source)["position"]
    with psycopg.connect(source.url(ROOT, ROOT_PASSWORD), autocommit=True) as conn:
        conn.execute("BEGIN READ WRITE")
        conn.execute("TRUNCATE shop.orders")
        conn.execute("COMMIT")
    assert status(split_env, source)["position"] != first


def test_connect_granted_back_and_a_role_setting_are_reported(
    split_env: SplitEnv, source: Source
) -> None:
    assert run(split_env, source, "freeze")[0] == 0
    with source.pg.connect() as conn:
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(source.name), sql.Identifier(OTHER)
            )
        )
        conn.execute(
            sql.SQL("ALTER ROLE {} IN DATABASE {} SET default_transaction_read_only = off").format(
                sql.Identifier(ROOT), sql.Identifier(source.name)
            )
        )
    found = status(split_env, source)
    problems = " / ".join(found["problems"])  # type: ignore[arg-type]
    assert found["ok"] is False
    assert f"role(s) {OTHER} can still connect" in problems
    assert f"role {ROOT} has default_transaction_read_only=off" in problems
    # Freezing again takes CONNECT back; the role setting stays reported until reset.
    code, _, err = run(split_env, source, "freeze")
    assert code == 3, err
    assert f"role {ROOT} has default_transaction_read_only=off" in err, err
    with source.pg.connect() as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} IN DATABASE {} RESET ALL").format(
                sql.Identifier(ROOT), sql.Identifier(source.name)
            )
        )
    assert status(split_env, source)["ok"] is True


def test_a_pending_prepared_transaction_blocks_the_freeze(
    split_env: SplitEnv, source: Source
) -> None:
    with psycopg.connect(source.url(OTHER, OTHER_PASSWORD), autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO shop.orders (note) VALUES ('pending')")
        conn.execute("PREPARE TRANSACTION 'frz-pending'")
    try:
        code, _, err = run(split_env, source, "freeze")
        assert code == 3, err
        assert "prepared transaction 'frz-pending'" in err
        assert status(split_env, source)["frozen"] is False  # nothing was changed
    finally:
        with source.pg.connect(source.name) as conn:
            conn.execute("ROLLBACK PREPARED 'frz-pending'")


def test_a_role_that_cannot_end_other_sessions_changes_nothing(
    split_env: SplitEnv, source: Source
) -> None:
    split_env.extra_env["OLD_DATABASE_URL"] = source.url(APP, APP_PASSWORD)
    proc = split_env.run("freeze")
    assert proc.returncode == 3, proc.stderr
    assert "may not end other roles' sessions" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert status(split_env, source)["frozen"] is False


def test_migrate_refuses_a_source_that_is_not_frozen(split_env: SplitEnv, source: Source) -> None:
    code, _, err = run(split_env, source, "migrate", "--no-verify")
    assert code == 3, err
    assert "is not frozen safely: the database is not frozen" in err
    for where in ("primary", "data"):
        assert split_env.query(where, "SELECT to_regnamespace('_dbsplit')") == [(None,)]


def test_a_copy_of_an_older_source_is_never_taken_for_done(
    split_env: SplitEnv, source: Source
) -> None:
    assert run(split_env, source, "freeze")[0] == 0
    code, _, err = run(split_env, source, "migrate")
    assert code == 0, err
    mark = split_env.query("data", "SELECT position FROM _dbsplit.source_mark")[0][0]
    assert mark == status(split_env, source)["position"]
    with psycopg.connect(source.url(ROOT, ROOT_PASSWORD), autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")
        conn.execute("DELETE FROM shop.orders WHERE id = 3")
    code, _, err = run(split_env, source, "migrate")
    assert code == 3, err
    assert "'s copy was taken (1 row write(s) since): it lacks those writes" in err
    code, out, err = run(split_env, source, "verify")
    assert code == 1, out + err
