"""The fixture app under real pm2 on the stand-in VPS: single mode, split mode, migrations.

Split mode runs against the DBaaS stand-in (pool URL: PgBouncer, TLS verify-full against the
CA, `pgbouncer=true`) and the local PG17 DATA database, as after the real deploy.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from standins import handled_data
from standins.dbaas import Dbaas
from standins.host import AppError, Vps, http_json, with_query
from standins.postgres import PostgresServer
from standins.tls import make_ca
from tests.conftest import MakeDb


@dataclass(frozen=True)
class Split:
    """The split `.env` (not yet written) and the fresh PRIMARY database behind its pool."""

    env: dict[str, str]
    primary_db: str


@pytest.fixture(scope="module")
def split(vps: Vps, dbaas: Dbaas) -> Iterator[Split]:
    """A fresh PRIMARY database with its own pool, both sets of migrations applied.

    The CA is copied into the app dir: the VPS reads it as the deploy user. At the end the app
    is put back on the single-DB `.env`.
    """
    primary_db = f"primary_{secrets.token_hex(4)}"
    pool = f"pool_{primary_db}"
    dbaas.add_database(primary_db)
    dbaas.add_pool(pool, primary_db)
    ca = vps.app.install_file(dbaas.ca_path, "certs/primary-ca.crt")
    env = vps.split_env(
        primary_pool_url=with_query(dbaas.pool_url(pool=pool), sslrootcert=str(ca)),
        primary_direct_url=with_query(dbaas.direct_url(primary_db), sslrootcert=str(ca)),
    )
    vps.app.write_env(env)
    assert "applied 1 migration" in vps.app.migrate("primary")
    assert "applied 1 migration" in vps.app.migrate("data")
    yield Split(env=env, primary_db=primary_db)
    vps.app.write_env(vps.single_env())
    vps.app.restart(mode="single")
    dbaas.server.drop_database(primary_db)


def test_single_mode_health_and_endpoints(vps: Vps) -> None:
    vps.app.write_env(vps.single_env())
    body = vps.app.restart(mode="single")
    assert body["status"] == "ok"
    for name in ("primary", "data"):
        db = body["databases"][name]
        assert db["connected"] is True
        assert db["database"] == vps.source_db
        assert db["serverVersion"].startswith("15.")
    with vps.source.connect(vps.source_db) as conn:
        users = conn.execute("SELECT count(*) FROM config.users").fetchone()
        migrations = conn.execute("SELECT migration_name FROM _prisma_migrations").fetchall()
    assert users is not None
    assert users[0] > 0
    assert http_json(f"{vps.app.api_url}/api/users/count").body == {"count": users[0]}
    carriers = http_json(f"{vps.app.api_url}/api/carriers").body["carriers"]
    assert carriers[0]["code"] == "CAR001"
    created = http_json(
        f"{vps.app.api_url}/api/integration-runs", method="POST", payload={"connector": "x"}
    )
    assert created.status == 201
    # The old history (8 generated rows) plus the app's two migrations, recorded as no-ops.
    names = {name for (name,) in migrations}
    assert {"20250101000000_primary_init", "20250101000000_data_init"} <= names
    assert len(names) == 10
    processes = {p["name"]: p for p in vps.app.processes()}
    assert processes["backoffice-api"]["status"] == "online"
    assert processes["backoffice-web"]["status"] == "online"


def test_web_serves_its_page_and_proxies_health(vps: Vps) -> None:
    page = http_json(f"{vps.app.web_url}/")
    assert page.status == 200
    assert "Handled back office" in page.body
    proxied = http_json(f"{vps.app.web_url}/api/health")
    assert proxied.status == 200
    assert proxied.body["status"] == "ok"


def test_split_mode_through_the_pool_with_verified_tls(vps: Vps, split: Split) -> None:
    vps.app.write_env(split.env)
    body = vps.app.restart(mode="split")
    primary, data = body["databases"]["primary"], body["databases"]["data"]
    assert body["status"] == "ok"
    assert body["auth"] == {"configured": True}
    assert primary["connected"] is True
    assert primary["tls"] is True
    assert primary["pooled"] is True
    assert primary["sslmode"] == "verify-full"
    assert primary["serverVersion"].startswith("17.")
    assert data["connected"] is True
    assert data["database"] == vps.data_db
    assert data["tls"] is False

    # The app works on the new, empty databases: rows go to DATA, counts come from PRIMARY.
    assert http_json(f"{vps.app.api_url}/api/users/count").body == {"count": 0}
    created = http_json(f"{vps.app.api_url}/api/integration-runs", method="POST", payload={})
    assert created.status == 201
    runs = http_json(f"{vps.app.api_url}/api/integration-runs").body["runs"]
    assert [str(r["id"]) for r in runs] == [str(created.body["id"])]

    # Secrets stay in the 0600 .env: not in pm2's environment, not in the app's logs.
    assert vps.app.env_path.stat().st_mode & 0o777 == 0o600
    jlist = vps.app.pm2("jlist")
    logs = "".join(p.read_text() for p in (vps.app.app_dir / "logs").glob("*.log"))
    for secret in (vps.data_password, vps.auth_secret, _password_of(split.env)):
        assert secret not in jlist
        assert secret not in logs


def test_migrations_are_idempotent(vps: Vps, split: Split) -> None:
    vps.app.write_env(split.env)
    assert "no pending migrations" in vps.app.migrate("primary")
    assert "no pending migrations" in vps.app.migrate("data")
    with vps.data.connect(vps.data_db) as conn:
        rows = conn.execute("SELECT migration_name FROM public._prisma_migrations").fetchall()
    assert rows == [("20250101000000_data_init",)]


def test_migrations_refuse_the_pool(vps: Vps, split: Split) -> None:
    env = {**split.env, "PRIMARY_DIRECT_URL": split.env["PRIMARY_DATABASE_URL"]}
    vps.app.write_env(env)
    with pytest.raises(AppError, match="goes through the pool"):
        vps.app.migrate("primary")


def test_wrong_data_url_gives_degraded_health(vps: Vps, split: Split) -> None:
    wrong = split.env["DATA_DATABASE_URL"].replace(vps.data_password, "not-the-password")
    vps.app.write_env({**split.env, "DATA_DATABASE_URL": wrong})
    body = vps.app.restart(require_ok=False, mode="split")
    assert vps.app.health().status == 503
    assert body["status"] == "degraded"
    assert body["databases"]["primary"]["connected"] is True
    assert body["databases"]["data"]["connected"] is False
    assert "password authentication failed" in body["databases"]["data"]["error"]
    assert "not-the-password" not in str(body)


def test_missing_auth_secret_gives_degraded_health(vps: Vps, split: Split) -> None:
    env = {key: value for key, value in split.env.items() if key != "AUTH_SECRET"}
    vps.app.write_env(env)
    body = vps.app.restart(require_ok=False, mode="split")
    assert body["status"] == "degraded"
    assert body["auth"] == {"configured": False, "error": "AUTH_SECRET is not set"}
    assert body["databases"]["primary"]["connected"] is True
    assert body["databases"]["data"]["connected"] is True


def test_primary_certificate_is_verified(vps: Vps, split: Split, tmp_path: Path) -> None:
    other = make_ca(tmp_path / "other-ca", common_name="not the DBaaS CA")
    ca = vps.app.install_file(other.cert_path, "certs/other-ca.crt")
    url = with_query(split.env["PRIMARY_DATABASE_URL"], sslrootcert=str(ca))
    vps.app.write_env({**split.env, "PRIMARY_DATABASE_URL": url})
    body = vps.app.restart(require_ok=False, mode="split")
    assert body["status"] == "degraded"
    assert body["databases"]["primary"]["connected"] is False
    assert "certificate" in body["databases"]["primary"]["error"]
    assert body["databases"]["data"]["connected"] is True


def _password_of(env: dict[str, str]) -> str:
    from urllib.parse import unquote, urlsplit

    password = urlsplit(env["PRIMARY_DATABASE_URL"]).password
    assert password
    return unquote(password)


def test_migrations_create_the_same_tables_as_the_old_database(
    vps: Vps, split: Split, dbaas: Dbaas, data_pg: PostgresServer, make_db: MakeDb
) -> None:
    # The app's migrations and the generator of the old database describe the same tables, so
    # the split only ever has data to copy.
    reference = make_db(data_pg)
    with data_pg.connect(reference) as conn:
        conn.autocommit = False
        handled_data.create_schema(conn)
        expected_primary = _catalog(conn, ["config", "customer"])
        expected_data = _catalog(conn, ["reference", "workspace", "integration"])
    with dbaas.server.connect(split.primary_db) as conn:
        assert _catalog(conn, ["config", "customer"]) == expected_primary
    with vps.data.connect(vps.data_db) as conn:
        assert _catalog(conn, ["reference", "workspace", "integration"]) == expected_data


def _catalog(conn: psycopg.Connection[Any], schemas: list[str]) -> dict[str, list[Any]]:
    """Columns, constraints, indexes and enum labels of `schemas`, comparably sorted."""
    queries = {
        "columns": "SELECT table_schema, table_name, column_name, data_type, udt_name,"
        " is_nullable, column_default, is_identity, identity_generation,"
        " character_maximum_length, numeric_precision, numeric_scale"
        " FROM information_schema.columns WHERE table_schema = ANY(%s)",
        "constraints": "SELECT n.nspname, c.relname, con.conname, pg_get_constraintdef(con.oid)"
        " FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY(%s)",
        "indexes": "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes"
        " WHERE schemaname = ANY(%s)",
        "enums": "SELECT n.nspname, t.typname, e.enumsortorder, e.enumlabel FROM pg_enum e"
        " JOIN pg_type t ON t.oid = e.enumtypid JOIN pg_namespace n ON n.oid = t.typnamespace"
        " WHERE n.nspname = ANY(%s)",
    }
    return {
        name: sorted(conn.execute(query, [schemas]).fetchall()) for name, query in queries.items()
    }
