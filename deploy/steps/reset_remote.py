"""Remote side of the reset after a rollback: dump the stale split, then drop it.

PRIMARY's split schemas (with dbsplit's bookkeeping and the app's migration history) and the
DATA database are dumped with ``pg_dump -Fc`` next to the backups and to Spaces, each checked by
SHA-256, and only then dropped; the window is closed in the journal (its record archived), so
the next window starts afresh with a new backup.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbsplit.urls import env_value
from deploy.remote import apps, spaces
from deploy.remote.journal import Journal, now
from deploy.remote.pg import BOUNDED, ident, literal, psql
from deploy.remote.runtime import Context, Failure, home_path, private_dir, run, say


@dataclass(frozen=True)
class ResetQuery:
    health_url: str
    env_file: str
    primary_schemas: list[str]
    data_db: str
    backup_dir: str
    key_prefix: str = ""
    bucket: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResetState:
    window: str | None = None
    rolled_back: bool = False
    primary_schemas: list[str] = field(default_factory=list)
    data_database: bool = False
    primary_history: bool = False


def _primary_schemas(ctx: Context, schemas: list[str]) -> list[str]:
    listed = ",".join(literal(s) for s in [*schemas, "_dbsplit"])
    return psql(
        ctx.conn("primary_direct"),
        f"SELECT nspname FROM pg_namespace WHERE nspname IN ({listed}) ORDER BY 1",
        what="list PRIMARY's split schemas",
    )


def state(req: ResetQuery, ctx: Context) -> ResetState:
    journal = Journal(ctx).state()
    exists = psql(
        ctx.conn("data_admin"),
        f"SELECT count(*) FROM pg_database WHERE datname = {literal(req.data_db)}",
        what="look for the DATA database",
    )
    history = psql(
        ctx.conn("primary_direct"),
        "SELECT to_regclass('public._prisma_migrations') IS NOT NULL",
        what="look for PRIMARY's migration history",
    )
    return ResetState(
        window=journal.get("window"),
        rolled_back=bool(journal.get("rolled_back")),
        primary_schemas=_primary_schemas(ctx, req.primary_schemas),
        data_database=exists == ["1"],
        primary_history=history == ["t"],
    )


def _dump(argv_env: dict[str, str], target: Path, what: str, extra: list[str]) -> None:
    run(
        ["pg_dump", "-Fc", "--no-password", *extra, "-f", str(target)],
        env={**argv_env, "PGCONNECT_TIMEOUT": BOUNDED["PGCONNECT_TIMEOUT"]},
        what=what,
    )
    target.chmod(0o600)


def reset(req: ResetQuery, ctx: Context) -> None:
    """Refuse while the app uses the split; dump, upload and drop it; close the window."""
    with Journal(ctx).step("reset") as journal:
        body = apps.get_health(req.health_url, timeout=3)
        if body.get("mode") == "split":
            raise Failure("the app runs in split mode: roll back first (deploy/rollback.py)")
        env = home_path(req.env_file)
        text = env.read_text(encoding="utf-8") if env.exists() else ""
        if (env_value(text, "SPLIT_DB_MODE") or "").lower() == "true":
            raise Failure("the app's .env is in split mode: roll back first (deploy/rollback.py)")
        found = state(req, ctx)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        folder = private_dir(home_path(req.backup_dir) / f"reset-{found.window or stamp}")
        dumps: list[Path] = []
        # -n and -t together dump only the -t tables inside the -n schemas: two dumps.
        if found.primary_schemas:
            target = folder / f"primary-{stamp}.dump"
            schemas = [f"--schema={s}" for s in found.primary_schemas]
            _dump(ctx.conn("primary_direct"), target, "pg_dump PRIMARY's split", schemas)
            dumps.append(target)
        if found.primary_history:
            target = folder / f"primary-migrations-{stamp}.dump"
            _dump(
                ctx.conn("primary_direct"),
                target,
                "pg_dump PRIMARY's migration history",
                ["--table=public._prisma_migrations"],
            )
            dumps.append(target)
        if found.data_database:
            target = folder / f"{req.data_db}-{stamp}.dump"
            _dump(
                {**ctx.conn("data_admin"), "PGDATABASE": req.data_db},
                target,
                f"pg_dump {req.data_db}",
                [],
            )
            dumps.append(target)
        where = spaces.Bucket(**req.bucket)
        uploaded = [
            spaces.put_checked(where, ctx, path, f"{req.key_prefix}/{folder.name}/{path.name}")
            for path in dumps
        ]
        if found.primary_schemas or found.primary_history:
            psql(
                ctx.conn("primary_direct"),
                (
                    "DROP SCHEMA IF EXISTS "
                    + ", ".join(ident(s) for s in found.primary_schemas)
                    + " CASCADE; "
                    if found.primary_schemas
                    else ""
                )
                + "DROP TABLE IF EXISTS public._prisma_migrations",
                what="drop the split on PRIMARY",
            )
            say(
                f"PRIMARY: dropped schemas {', '.join(found.primary_schemas)} and the app's"
                " migration history (dumped first)"
            )
        if found.data_database:
            psql(
                ctx.conn("data_admin"),
                f"DROP DATABASE IF EXISTS {ident(req.data_db)} WITH (FORCE)",
                what=f"drop {req.data_db}",
            )
            say(f"DATA: dropped database {req.data_db} (dumped first)")
        journal.close_window(
            "reset", reset={"at": now(), "dumps": [str(p) for p in dumps], "uploaded": uploaded}
        )
        say(f"window closed; the dropped split is kept in {folder} and in Spaces")
