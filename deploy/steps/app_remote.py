"""Remote side of steps 7-9: build the app, restart it, wait for its health.

The restart onto the split is the cut-over. Just before it, the gate is judged once more from
the databases (the build ran migrations in between), and the cut-over is recorded: in the
journal and in each target's ``_dbsplit.cutover``, the transaction horizon (every row written
from then on carries a newer ``xmin``, which is how a rollback counts what the app wrote in
split mode), and the row count of every table as verify found it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.remote import apps, smoke
from deploy.remote.journal import Journal, now
from deploy.remote.pg import literal, psql
from deploy.remote.runtime import Context, Failure, home_path, say, sha256_file, stream
from deploy.steps.split_remote import DbsplitQuery
from deploy.steps.verify_remote import Gate, gate

_SKIP_DIRS = {"node_modules", ".git", "dist", ".next", ".turbo", "build", "logs", ".pnpm-store"}


@dataclass(frozen=True)
class App:
    """Where the app is and how pm2 runs it; ``mode`` is the database mode expected."""

    app_dir: str
    env_file: str
    apps: list[str]
    ecosystem: str
    health_url: str
    mode: str
    health_contract: dict[str, Any] = field(default_factory=dict)
    smoke: dict[str, Any] = field(default_factory=dict)
    phase: str = ""
    venv: str = ""
    install_args: list[str] = field(default_factory=list)
    primary_schemas: list[str] = field(default_factory=list)
    timeout: float = 60.0


@dataclass(frozen=True)
class AppState:
    built: bool = False
    restarted: bool = False
    online: bool = False
    healthy: bool = False
    health: str = ""
    running: list[str] = field(default_factory=list)
    smoke_passed: bool = False


def tree_digest(root: Path) -> str:
    """SHA-256 over the app's source files (dependencies, builds, logs and .env* left out)."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in sorted(filenames):
            if name.startswith(".env") or name.endswith(".log"):
                continue
            path = Path(dirpath) / name
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def app_digest(req: App) -> str:
    """What the app was built and restarted for: its sources and its ``.env``."""
    env = home_path(req.env_file)
    env_sha = sha256_file(env) if env.exists() else "-"
    return hashlib.sha256(f"{tree_digest(home_path(req.app_dir))}:{env_sha}".encode()).hexdigest()


def state(req: App, ctx: Context) -> AppState:
    """Fact: built and restarted for these sources and this .env, pm2 status, one health read."""
    digest = app_digest(req)
    recorded = Journal(ctx).state()
    ok, why = apps.healthy(apps.get_health(req.health_url), req.mode, req.health_contract)
    return AppState(
        built=recorded.get("app_built") == digest,
        restarted=recorded.get("app_restarted") == digest,
        online=apps.all_online(req.apps),
        healthy=ok,
        health=why,
        running=apps.running(req.apps),
        smoke_passed=smoke_passed(recorded, req.phase),
    )


#: What a phase's smoke run must be newer than: the cut-over's restart, the rollback's mark.
_PHASE_START = {"cutover": ("restarted_at",), "rollback": ("rolled_back", "at")}


def smoke_passed(recorded: dict[str, Any], phase: str) -> bool:
    """Whether this window's smoke checks of ``phase`` passed since the phase began (true when
    there is nothing to prove: no phase asked, no window open)."""
    if not phase or not recorded.get("window"):
        return True
    run = (recorded.get("smoke") or {}).get(phase) or {}
    began: Any = recorded
    for key in _PHASE_START.get(phase, ()):
        began = began.get(key) if isinstance(began, dict) else None
    checks = run.get("checks") or []
    return (
        bool(checks) and all(c.get("ok") for c in checks) and str(run.get("at")) >= str(began or "")
    )


def build(req: App, ctx: Context) -> None:
    """pnpm install, db:generate, PRIMARY and DATA migrations (direct URLs), build."""
    with Journal(ctx).step("app-build") as journal:
        app = home_path(req.app_dir)
        digest = app_digest(req)
        # The migrations read PRIMARY_DIRECT_URL and DATA_DATABASE_URL from the new .env: the
        # direct URL, never the pool (the app's migrate script refuses a pgbouncer=true URL).
        for argv in (
            ["pnpm", "install", *req.install_args],
            ["pnpm", "db:generate"],
            ["pnpm", "db:migrate:primary"],
            ["pnpm", "db:migrate:data"],
            ["pnpm", "build"],
        ):
            what = " ".join(argv[:2])
            say(what)
            stream(argv, env={"CI": "true"}, cwd=app, what=what)
        if req.primary_schemas:
            listed = ",".join(literal(s) for s in req.primary_schemas)
            rows = psql(
                ctx.conn("primary_direct"),
                f"SELECT nspname FROM pg_namespace WHERE nspname IN ({listed})",
                what="list PRIMARY's schemas",
            )
            missing = sorted(set(req.primary_schemas) - set(rows))
            if missing:
                raise Failure(f"PRIMARY lacks schema(s) {', '.join(missing)} after its migrations")
            say(f"PRIMARY has schemas {', '.join(req.primary_schemas)}")
        journal.update("app-build", app_built=digest)


def _record_cutover(ctx: Context, journal: Journal, judged: Gate) -> None:
    """The transaction horizon of each target at the cut-over, in the journal and the target,
    with what the gate found: every database's write position (the source's is the copy's
    snapshot's: it stayed frozen and unchanged from the snapshot to here) and the verify it
    trusted."""
    recorded = journal.state()
    if recorded.get("cutover"):
        return
    window = str(recorded.get("window"))
    horizons: dict[str, str] = {}
    for name, conn in (("primary", "primary_direct"), ("data", "data")):
        rows = psql(
            ctx.conn(conn),
            "CREATE TABLE IF NOT EXISTS _dbsplit.cutover (window_id text PRIMARY KEY,"
            " horizon xid8 NOT NULL, at timestamptz NOT NULL DEFAULT now());"
            " INSERT INTO _dbsplit.cutover (window_id, horizon) VALUES"
            f" ({literal(window)}, pg_snapshot_xmax(pg_current_snapshot()))"
            " ON CONFLICT (window_id) DO UPDATE SET window_id = EXCLUDED.window_id"
            " RETURNING horizon::text",
            what=f"record the cut-over on {name}",
        )
        horizons[name] = rows[-1]
    tables = (recorded.get("verify") or {}).get("tables") or {}
    journal.update(
        "cutover",
        cutover={
            "at": now(),
            "horizon": horizons,
            "tables": tables,
            "window": window,
            "gate": {
                "positions": judged.positions,
                "verified_at": judged.verified_at,
                "verify_run": judged.verify_run,
            },
        },
    )
    say(f"cut-over recorded: transaction horizon {horizons}")


def restart(req: App, ctx: Context) -> None:
    """``pm2 restart <apps> --update-env``; onto the split only through the gate."""
    with Journal(ctx).step(f"restart-{req.mode}") as journal:
        if req.mode == "split":
            judged = gate(DbsplitQuery(req.venv), ctx)
            if not judged.cut_over and not judged.passed:
                raise Failure(
                    "cut-over refused, the app was not restarted: " + "; ".join(judged.reasons)
                )
            _record_cutover(ctx, journal, judged)
        apps.restart(home_path(req.app_dir), req.ecosystem, req.apps)
        if req.mode == "split":
            journal.update("restart", app_restarted=app_digest(req), restarted_at=now())


def wait_healthy(req: App, ctx: Context) -> None:
    """Poll the health URL until it shows the mode with both databases connected; then run the
    smoke checks (when ``req.phase`` names one) and fail unless every one passes."""
    why = apps.wait_healthy(req.health_url, req.mode, req.health_contract, req.timeout)
    if req.mode == "split":
        Journal(ctx).update("health", healthy={"at": now(), "mode": req.mode, "health": why})
    if req.phase and req.smoke.get("checks"):
        results = smoke.run_phase(smoke.Smoke(**req.smoke), ctx, req.phase, req.mode)
        if not all(r["ok"] for r in results):
            raise Failure(smoke.summary(results))
        say(smoke.summary(results))
