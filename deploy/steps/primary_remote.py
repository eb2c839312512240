"""Remote side of Phase 2, PRIMARY's initialisation from the VPS: reach it with TLS, run the
app's PRIMARY migrations through the direct URL (the pool's burst: :mod:`pool_remote`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deploy.remote.journal import Journal
from deploy.remote.pg import literal, psql
from deploy.remote.runtime import Context, Failure, home_path, say, stream


@dataclass(frozen=True)
class PrimaryQuery:
    app_dir: str
    primary_schemas: list[str]


@dataclass(frozen=True)
class PrimaryState:
    reachable: bool = False
    error: str = ""
    version: str = ""
    tls: bool = False
    tables: dict[str, int] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)
    local: list[str] = field(default_factory=list)


def _facts(conn: Mapping[str, str], schemas: Sequence[str]) -> dict[str, Any]:
    listed = ",".join(literal(s) for s in schemas) or "''"
    rows = psql(
        conn,
        "SELECT current_setting('server_version'),"
        " (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()),"
        " coalesce((SELECT string_agg(n.nspname || ':' || (SELECT count(*) FROM pg_tables t"
        " WHERE t.schemaname = n.nspname), ',') FROM pg_namespace n"
        f" WHERE n.nspname IN ({listed})), ''),"
        " to_regclass('public._prisma_migrations') IS NOT NULL",
        what="read PRIMARY's state",
    )
    version, tls, found, has_history = [*rows[0].split("|"), "", "", "", ""][:4]
    applied = ""
    if has_history == "t":
        history = psql(
            conn,
            "SELECT coalesce(string_agg(migration_name, ',' ORDER BY migration_name), '')"
            " FROM public._prisma_migrations"
            " WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL",
            what="read PRIMARY's migration history",
        )
        applied = history[0] if history else ""
    tables = {k: int(v) for k, v in (x.split(":") for x in found.split(",") if x)}
    return {
        "version": version,
        "tls": tls == "t",
        "tables": tables,
        "applied": [m for m in applied.split(",") if m],
    }


def _local_migrations(app_dir: str) -> list[str]:
    root = home_path(app_dir) / "prisma" / "primary" / "migrations"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def state(req: PrimaryQuery, ctx: Context) -> PrimaryState:
    """Fact: PRIMARY from the VPS (version, TLS, schemas, migrations)."""
    try:
        facts = _facts(ctx.conn("primary_direct"), req.primary_schemas)
    except Failure as exc:
        return PrimaryState(reachable=False, error=str(exc))
    return PrimaryState(reachable=True, local=_local_migrations(req.app_dir), **facts)


@dataclass(frozen=True)
class Migrate:
    app_dir: str


def migrate(req: Migrate, ctx: Context) -> None:
    """``pnpm db:migrate:primary`` with PRIMARY_DIRECT_URL in its environment (never the pool)."""
    with Journal(ctx).step("primary-migrate"):
        env = {"CI": "true", "PRIMARY_DIRECT_URL": str(ctx.secret("primary_direct_url"))}
        say("pnpm db:migrate:primary (PRIMARY_DIRECT_URL from the environment)")
        stream(
            ["pnpm", "db:migrate:primary"],
            env=env,
            cwd=home_path(req.app_dir),
            what="pnpm db:migrate:primary",
        )
