"""The facts a rehearsal measures on the (stand-in) VPS and servers, for its checklist evidence.

Each function reads one kind of fact in this run: the deploy's journal (``window.json``, the
window's current facts, and ``journal.jsonl``, its events), the ``.env`` and the build the
deploy left on the VPS, the CA file, the databases' catalogs, the servers' logs, a connection
tried from an address the DBaaS must refuse. :mod:`rehearsal.proofs` judges them; nothing here
decides whether an item is proven.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from dbsplit.urls import redact
from rehearsal.proofs import PG_LOG_EXCLUDED, PG_LOG_PATTERN
from standins.window import Window as World

API_BUILD = Path("apps/backoffice/api/dist/build.json")
"""The build stamp of the API pm2 runs, under the app's directory."""


def _state_dir(world: World) -> Path:
    return world.vps.ssh.home / ".handled-deploy"


def journal_state(world: World | None) -> dict[str, Any]:
    """The VPS's current window facts ({} when none)."""
    if world is None:
        return {}
    return read_json_object(_state_dir(world) / "window.json")


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from ``path`` ({} when missing, unreadable or not an object)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def journal_events(path: Path, window: object) -> list[dict[str, Any]]:
    """The events of ``window`` in the journal at ``path`` (``journal.jsonl``), in order."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    events: list[dict[str, Any]] = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and window is not None and event.get("window") == window:
            events.append(event)
    return events


def window_facts(world: World) -> dict[str, Any]:
    """The journal's state and events after a deploy, the ``.env``, the build and the CA."""
    state = journal_state(world)
    app = world.vps.app
    env = app.env_path
    outputs = json.loads(world.stack_outputs().read_text(encoding="utf-8"))
    ca_path = Path(str(outputs["caCertPath"]))
    return {
        "journal": state,
        "events": journal_events(_state_dir(world) / "journal.jsonl", state.get("window")),
        "env": {
            "values": app.read_env(),
            "mode": env.stat().st_mode & 0o777 if env.exists() else 0,
            "vps": world.network.vps_address if world.network else "127.0.0.1",
        },
        "build": read_json_object(app.app_dir / API_BUILD),
        "ca": {
            "path": str(ca_path),
            "found": ca_path.read_text(encoding="ascii") if ca_path.exists() else "",
            "expected": outputs["caCertificate"],
        },
        "pool_size": int(outputs["poolSize"]),
    }


def database_facts(world: World) -> dict[str, Any]:
    """PRIMARY's database and its tables per schema, the DATA database's owner, and each
    database's applied migrations against those the deployed app ships."""
    with world.dbaas.server.connect() as conn:
        exists = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (world.primary_db,)
        ).fetchone()
    tables: dict[str, int] = {}
    applied: dict[str, int] = {}
    if exists and exists[0]:
        with world.dbaas.server.connect(world.primary_db) as conn:
            tables = schema_tables(conn)
            applied["primary"] = applied_migrations(conn)
    data_db = world.vps.data_db
    with world.data_pg.connect() as conn:
        row = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (data_db,)
        ).fetchone()
    owner = str(row[0]) if row else None
    if owner:
        with world.data_pg.connect(data_db) as conn:
            applied["data"] = applied_migrations(conn)
    shipped = world.vps.app.app_dir / "prisma"
    return {
        "primary_database": {"name": world.primary_db, "exists": bool(exists and exists[0])}
        | {"tables": tables},
        "data_database": {"name": data_db, "owner": owner},
        "migrations": {
            name: {
                "applied": applied.get(name, 0),
                "shipped": shipped_migrations(shipped / name / "migrations"),
            }
            for name in ("primary", "data")
        },
    }


def shipped_migrations(folder: Path) -> int:
    """Migrations in a Prisma ``migrations`` folder (each a ``<name>/migration.sql``)."""
    return sum(1 for _ in folder.glob("*/migration.sql"))


def schema_tables(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Tables per schema of PRIMARY's (``config``, ``customer``) in the connected database."""
    rows = conn.execute(
        "SELECT schemaname, count(*) FROM pg_tables WHERE schemaname IN ('config', 'customer')"
        " GROUP BY 1"
    ).fetchall()
    return {str(s): int(n) for s, n in rows}


def applied_migrations(conn: psycopg.Connection[Any]) -> int:
    """Migrations applied and not rolled back, per ``public._prisma_migrations`` (0 without)."""
    table = sql.Identifier("public", "_prisma_migrations")
    found = conn.execute("SELECT to_regclass('public._prisma_migrations')").fetchone()
    if not found or found[0] is None:
        return 0
    row = conn.execute(
        sql.SQL(
            "SELECT count(*) FROM {} WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL"
        ).format(table)
    ).fetchone()
    return int(row[0]) if row else 0


def hba_facts(world: World) -> dict[str, Any]:
    """The DBaaS's TCP rules, and the address it must admit."""
    hba = (world.dbaas.server.data_dir / "pg_hba.conf").read_text(encoding="utf-8").splitlines()
    vps = world.network.vps_address if world.network else "127.0.0.1"
    return {"lines": [ln for ln in hba if ln.startswith("host")], "vps": vps}


def outside_connection(world: World) -> str | None:
    """Connect to PRIMARY from this host, another address than the VPS's: the error (redacted),
    "connected" if it was let in, or None where the VPS shares this host's address."""
    if world.network is None or not world.network.isolated:
        return None
    try:
        with psycopg.connect(world.dbaas.direct_url(world.primary_db), connect_timeout=10):
            return "connected"
    except psycopg.Error as err:
        return redact(" ".join(str(err).split()))


def scan_logs(logs: dict[str, Path], marks: dict[Path, int]) -> dict[str, Any]:
    """Lines of each log (by name) from its mark on, the error lines among them
    (``PG_LOG_PATTERN``, but not ``PG_LOG_EXCLUDED``)."""
    pattern = re.compile(PG_LOG_PATTERN)
    matches: list[str] = []
    lines = 0
    files: list[str] = []
    for name, path in logs.items():
        if not path.exists():
            continue
        files.append(name)
        with path.open("rb") as handle:
            handle.seek(marks.get(path, 0))
            text = handle.read().decode("utf-8", "replace")
        for line in text.splitlines():
            lines += 1
            if pattern.search(line) and PG_LOG_EXCLUDED not in line:
                matches.append(line)
    return {"files": files, "lines": lines, "matches": matches}
