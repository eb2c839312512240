"""The PostgreSQL stand-ins: real servers of the right version, run as the service user."""

from __future__ import annotations

import socket

import psycopg
import pytest

from standins import postgres
from standins.postgres import PostgresServer
from standins.system import free_port, process_owner, server_user


@pytest.mark.parametrize(("fixture", "version"), [("source_pg", 15), ("data_pg", 17)])
def test_server_version_and_owner(request: pytest.FixtureRequest, fixture: str, version: int):
    server: PostgresServer = request.getfixturevalue(fixture)
    assert server.version == version
    with server.connect() as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None
    assert int(row[0]) // 10000 == version
    assert process_owner(server.pid) == server_user()


def test_roles_and_databases_are_idempotent(data_pg: PostgresServer, make_db):
    data_pg.create_role("app_owner", "first-pw", createdb=True)
    data_pg.create_role("app_owner", "second-pw", createdb=True)
    name = make_db(data_pg, owner="app_owner")
    data_pg.create_database(name, owner="app_owner")
    url = data_pg.url(name, user="app_owner", password="second-pw")
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT current_user, current_database()").fetchone()
    assert row == ("app_owner", name)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(data_pg.url(name, user="app_owner", password="first-pw")).close()


def test_drop_database_terminates_sessions(source_pg: PostgresServer):
    name = source_pg.fresh_database()
    conn = source_pg.connect(name)
    source_pg.drop_database(name)
    source_pg.drop_database(name)
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    conn.close()


def test_url_percent_encodes(data_pg: PostgresServer):
    url = data_pg.url("my db", user="a@b", password="p:w/?", application_name="x y")
    assert url == (
        f"postgresql://a%40b:p%3Aw%2F%3F@127.0.0.1:{data_pg.port}/my%20db?application_name=x%20y"
    )
    assert data_pg.superuser_password in data_pg.url()


def test_stop_removes_everything_and_is_idempotent():
    server = PostgresServer.start(version=17, name="short")
    pid = server.pid
    base = server.base_dir
    server.stop()
    server.stop()
    assert not base.exists()
    with pytest.raises(FileNotFoundError):
        process_owner(pid)


def test_start_failure_reports_log_tail():
    with pytest.raises(RuntimeError, match="exited during start-up") as info:
        PostgresServer.start(version=17, name="broken", settings={"shared_buffers": "nonsense"})
    assert "shared_buffers" in str(info.value)


def test_hba_addresses_limit_tcp_but_not_setup():
    with PostgresServer.start(version=17, name="fw", hba_addresses=("10.9.9.9/32",)) as server:
        server.create_role("outsider", "pw")
        with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry"):
            psycopg.connect(server.url(user="outsider", password="pw")).close()


def test_start_retries_when_the_picked_port_is_taken(monkeypatch: pytest.MonkeyPatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy_port = taken.getsockname()[1]
        ports = iter([busy_port])
        monkeypatch.setattr(postgres, "free_port", lambda: next(ports, None) or free_port())
        with PostgresServer.start(version=17, name="retry") as server:
            assert server.port != busy_port
            assert "could not bind" in server.log_path.read_text()
