"""Remote side of step 3: stop the app, freeze the source, and check the freeze.

The freeze itself is ``dbsplit freeze`` (``dbsplit/freeze.py``: CONNECT taken from every role,
the read-only default set, every other session ended and waited for, then checked); it runs as
the source's superuser (``SOURCE_ADMIN_URL``). The check is ``dbsplit freeze --check``, which
changes nothing: the facts here are read from the database and from pm2, never from a marker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbsplit.urls import env_value
from deploy.remote import apps
from deploy.remote.journal import Journal, now
from deploy.remote.pg import dbsplit_json, psql
from deploy.remote.runtime import Context, Failure, home_path, say


@dataclass(frozen=True)
class AppQuery:
    apps: list[str]
    env_file: str


@dataclass(frozen=True)
class AppFacts:
    """What runs, and whether the window's cut-over already happened (``.env`` is the split
    one and the journal records the cut-over)."""

    running: list[str] = field(default_factory=list)
    env_split: bool = False
    cut_over: bool = False


def app_facts(req: AppQuery, ctx: Context) -> AppFacts:
    env = home_path(req.env_file)
    text = env.read_text(encoding="utf-8") if env.exists() else ""
    split = (env_value(text, "SPLIT_DB_MODE") or "").lower() == "true"
    cut_over = bool(Journal(ctx).state().get("cutover"))
    return AppFacts(apps.running(req.apps), split, cut_over)


def stop_apps(req: AppQuery, ctx: Context) -> None:
    """``pm2 stop`` every app that is not stopped (online, errored, restarting...)."""
    with Journal(ctx).step("app-stop") as journal:
        stopped = apps.stop(req.apps)
        journal.update("app-stop", app_stopped={"at": now(), "apps": stopped})


@dataclass(frozen=True)
class SourceQuery:
    venv: str


@dataclass(frozen=True)
class SourceFacts:
    """``dbsplit freeze --check`` on the source: frozen safely (``ok``), with what problems,
    at which write position."""

    frozen: bool = False
    ok: bool = False
    problems: list[str] = field(default_factory=list)
    position: dict[str, Any] | None = None
    error: str = ""


def _marked_frozen(ctx: Context) -> bool:
    """Without dbsplit on the VPS: does the source carry any freeze marker?"""
    rows = psql(
        ctx.conn("source_admin"),
        "SELECT EXISTS (SELECT 1 FROM pg_db_role_setting s JOIN pg_database d"
        " ON d.oid = s.setdatabase AND s.setrole = 0 WHERE d.datname = current_database()"
        " AND EXISTS (SELECT 1 FROM unnest(s.setconfig) c WHERE c LIKE 'dbsplit.frozen=%'"
        " OR c = 'default_transaction_read_only=on'))",
        what="read the source's settings",
    )
    return rows == ["t"]


def source_facts(req: SourceQuery, ctx: Context) -> SourceFacts:
    env = {"OLD_DATABASE_URL": str(ctx.secret("source_url"))}
    if not (home_path(req.venv) / "bin" / "dbsplit").exists():
        frozen = _marked_frozen(ctx)
        return SourceFacts(frozen, False, [], None, "dbsplit is not installed on the VPS")
    _, data = dbsplit_json(req.venv, ["freeze", "--check"], env, ok_codes=(0, 3))
    return SourceFacts(
        bool(data.get("frozen")),
        bool(data.get("ok")),
        list(data.get("problems") or []),
        data.get("position"),
    )


def freeze(req: SourceQuery, ctx: Context) -> None:
    """``dbsplit freeze`` as the source's superuser; the journal records the position."""
    with Journal(ctx).step("freeze") as journal:
        journal.window()
        env = {"OLD_DATABASE_URL": str(ctx.secret("source_url"))}
        code, data = dbsplit_json(req.venv, ["freeze"], env, ok_codes=(0,))
        check = data.get("check") or {}
        say(
            f"source frozen: {data.get('terminated', 0)} other session(s) ended; write position"
            f" {str((check.get('position') or {}).get('digest', ''))[:12]}"
        )
        journal.update("freeze", frozen={"at": now(), "position": check.get("position")})
        if code != 0:
            raise Failure("dbsplit freeze failed")


def unfreeze(req: SourceQuery, ctx: Context) -> None:
    """``dbsplit unfreeze``: CONNECT back to exactly the roles that had it."""
    with Journal(ctx).step("unfreeze") as journal:
        if not (home_path(req.venv) / "bin" / "dbsplit").exists():
            raise Failure("the source is frozen but dbsplit is not installed: run the preflight")
        env = {"OLD_DATABASE_URL": str(ctx.secret("source_url"))}
        dbsplit_json(req.venv, ["unfreeze"], env)
        say("source writable again")
        journal.update("unfreeze", unfrozen={"at": now()})
