"""The DigitalOcean managed PostgreSQL stand-in behaves like the real one where it matters."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from standins.dbaas import Dbaas
from standins.system import process_owner, server_user
from standins.tls import make_ca


def test_direct_connection_requires_tls(dbaas: Dbaas):
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(dbaas.direct_url(sslmode="disable")).close()
    for host in ("127.0.0.1", "localhost"):
        url = dbaas.direct_url().replace("@127.0.0.1:", f"@{host}:")
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert row.fetchone() == (True,)


def test_wrong_ca_is_rejected(dbaas: Dbaas, tmp_path: Path):
    other_ca = make_ca(tmp_path, common_name="some other CA")
    url = dbaas.server.url(
        dbaas.app_db,
        user=dbaas.admin_user,
        password=dbaas.admin_password,
        sslmode="verify-full",
        sslrootcert=str(other_ca.cert_path),
    )
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(url).close()


def test_doadmin_is_not_superuser_but_owns_app_db(dbaas: Dbaas):
    with psycopg.connect(dbaas.direct_url(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, "
            "pg_get_userbyid(d.datdba) FROM pg_roles, pg_database d "
            "WHERE rolname = current_user AND d.datname = current_database()"
        ).fetchone()
        assert row == (False, True, True, "doadmin")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET session_replication_role = replica")
        conn.execute("CREATE TABLE IF NOT EXISTS public.standins_probe (id int)")
        conn.execute("DROP TABLE public.standins_probe")


def test_pool_is_transaction_mode_size_15(dbaas: Dbaas):
    config = dbaas.bouncer.config()
    assert config["pool_mode"] == "transaction"
    assert config["default_pool_size"] == "15"
    with psycopg.connect(dbaas.pool_url(prisma=False), autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_user, current_database(), ssl FROM pg_stat_ssl "
            "WHERE pid = pg_backend_pid()"
        ).fetchone()
        assert row == ("doadmin", "handled", True)
        pools = {row["database"]: row for row in dbaas.bouncer.show("POOLS")}
    assert pools["handled-pool"]["pool_mode"] == "transaction"
    assert "pgbouncer=true" in dbaas.pool_url()


def test_pool_requires_tls(dbaas: Dbaas):
    url = dbaas.pool_url(prisma=False).replace("sslmode=verify-full", "sslmode=disable")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url).close()


def test_session_state_does_not_survive_transactions(dbaas: Dbaas):
    url = dbaas.pool_url(prisma=False)
    with (
        psycopg.connect(url, autocommit=True, prepare_threshold=None) as first,
        psycopg.connect(url, prepare_threshold=None) as second,
    ):
        first_pid = first.execute("SELECT pg_backend_pid()").fetchone()
        first.execute("SET statement_timeout = '1234ms'")
        # `second` opens a transaction on the now-idle server connection `first` used ...
        leaked = second.execute(
            "SELECT pg_backend_pid(), current_setting('statement_timeout')"
        ).fetchone()
        assert leaked == (first_pid[0] if first_pid else None, "1234ms")
        # ... so `first`'s next transaction runs on another server connection, without its SET.
        row = first.execute("SELECT pg_backend_pid(), current_setting('statement_timeout')")
        assert row.fetchone() != leaked
        second.rollback()


def test_named_prepared_statements_break_across_transactions(dbaas: Dbaas):
    url = dbaas.pool_url(prisma=False)
    with (
        psycopg.connect(url, autocommit=True) as first,
        psycopg.connect(url) as second,
    ):
        first.execute("SELECT 1", prepare=True)
        second.execute("SELECT 1", prepare=False)
        with pytest.raises(psycopg.errors.InvalidSqlStatementName):
            first.execute("SELECT 1", prepare=True)
        second.rollback()


def test_fresh_database_and_pool(dbaas: Dbaas, make_db):
    name = make_db(dbaas)
    with psycopg.connect(dbaas.direct_url(name)) as conn:
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        ).fetchone()
    assert owner == ("doadmin",)
    dbaas.add_pool(f"{name}-pool", name)
    with psycopg.connect(dbaas.pool_url(pool=f"{name}-pool", prisma=False)) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (name,)


def test_processes_run_as_service_user(dbaas: Dbaas):
    assert process_owner(dbaas.server.pid) == server_user()
    assert process_owner(dbaas.bouncer.pid) == server_user()
    assert dbaas.server.version == 17


def test_connect_helpers(dbaas: Dbaas):
    with dbaas.connect() as direct, dbaas.connect(pooled=True) as pooled:
        for conn in (direct, pooled):
            for _ in range(8):  # past psycopg's prepare threshold: must stay unprepared
                row = conn.execute("SELECT current_user, current_database()").fetchone()
            assert row == ("doadmin", "handled")
