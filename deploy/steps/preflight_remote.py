"""Remote side of step 1, the preflight: read-only checks from the VPS, before anything changes.

- the source, as its superuser (``SOURCE_ADMIN_URL``): reachable, who may freeze it, its size,
  ``track_counts`` on (the write position needs it);
- ``pg_dump`` on the VPS at least as new as the source and PRIMARY (the reset dumps PRIMARY);
- free disk: the backup's filesystem for the dump (at most the source's size), and the DATA
  server's filesystem for the DATA copy (the tables and indexes routed to DATA, as they are on
  the source) plus its WAL (as much again); one sum when both are one filesystem;
- PRIMARY, direct and through the pool, with TLS ``verify-full`` against the cluster's CA;
- the DATA server;
- no split left from before a rollback (the journal's rollback with a copy on a target).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.remote.journal import Journal
from deploy.remote.pg import literal, try_psql
from deploy.remote.runtime import Context, Failure, home_path, run


@dataclass(frozen=True)
class Probe:
    backup_dir: str
    primary_schemas: list[str]
    disk_margin: int


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class ProbeResult:
    checks: list[dict[str, Any]] = field(default_factory=list)
    stale_split: bool = False
    need: dict[str, int] = field(default_factory=dict)


def _existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def _major(text: str) -> int:
    found = re.search(r"(\d+)(?:\.\d+)?", text)
    return int(found.group(1)) if found else 0


def _disk(
    req: Probe, ctx: Context, source_size: int, data_bytes: int, checks: list[Check]
) -> dict[str, int]:
    ok, data_dir = try_psql(ctx.conn("data_admin"), "SHOW data_directory", "find DATA's directory")
    backup = _existing(home_path(req.backup_dir))
    places = {"backup": (backup, source_size + req.disk_margin)}
    data_path = Path(data_dir) if ok else None
    try:
        if data_path is None:
            raise OSError("unknown")
        os.statvfs(data_path)
    except OSError:
        data_path = None
    wal = data_bytes
    if data_path is not None and os.stat(data_path).st_dev == os.stat(backup).st_dev:
        places = {"backup and DATA": (backup, source_size + data_bytes + wal + req.disk_margin)}
    elif data_path is not None:
        places["DATA"] = (data_path, data_bytes + wal + req.disk_margin)
    else:
        places = {
            "backup and DATA (assumed one disk)": (
                backup,
                source_size + data_bytes + wal + req.disk_margin,
            )
        }
    for name, (path, need) in places.items():
        free = shutil.disk_usage(path).free
        checks.append(
            Check(
                f"disk ({name})",
                free >= need,
                f"{free >> 20} MiB free in {path}, {need >> 20} MiB needed (dump up to"
                f" {source_size >> 20} MiB, DATA copy {data_bytes >> 20} MiB and its WAL,"
                f" {req.disk_margin >> 20} MiB margin)",
            )
        )
    return {"dump": source_size, "data_copy": data_bytes, "data_wal": wal}


def _stale_split(ctx: Context) -> bool:
    """A rollback recorded while a target holds a copy: the old database moved on since."""
    if not Journal(ctx).state().get("rolled_back"):
        return False
    sql = "SELECT CASE WHEN to_regclass('_dbsplit.steps') IS NULL THEN 'none' ELSE 'started' END"
    for name in ("primary_direct", "data"):
        ok, row = try_psql(ctx.conn(name), sql, f"read {name}'s split state")
        if ok and row == "started":
            return True
    return False


def probe(req: Probe, ctx: Context) -> ProbeResult:
    """Fact: every preflight check, each with its detail; nothing is changed."""
    checks: list[Check] = []
    admin = ctx.conn("source_admin")
    schemas = ",".join(literal(s) for s in req.primary_schemas) or "''"
    ok, row = try_psql(
        admin,
        "SELECT current_setting('server_version_num')::int / 10000,"
        " pg_database_size(current_database()),"
        " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),"
        " current_setting('track_counts'),"
        " (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
        "  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm')"
        "  AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        f"  AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname NOT IN ({schemas}))",
        "connect to the source as SOURCE_ADMIN_URL",
    )
    source_major = source_size = data_bytes = 0
    if ok:
        major, size, superuser, track, data = row.split("|")
        source_major, source_size, data_bytes = int(major), int(size), int(data)
        checks.append(
            Check("source", True, f"source PostgreSQL {source_major}, {source_size} bytes")
        )
        checks.append(
            Check(
                "source admin",
                superuser == "t",
                "SOURCE_ADMIN_URL is a superuser (the freeze ends every session and takes every"
                " role's CONNECT)"
                if superuser == "t"
                else "SOURCE_ADMIN_URL is not a superuser: the freeze cannot end every session",
            )
        )
        checks.append(
            Check(
                "track_counts",
                track == "on",
                "track_counts is on (the write position counts writes)"
                if track == "on"
                else "track_counts is off: writes to the source could not be detected",
            )
        )
    else:
        checks.append(Check("source", False, row))
    ok, primary = try_psql(
        ctx.conn("primary_direct"),
        "SELECT current_setting('server_version_num')::int / 10000,"
        " (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())",
        "connect to PRIMARY (primary-direct, verify-full)",
    )
    primary_major = 0
    if ok and primary.endswith("|t"):
        primary_major = int(primary.split("|")[0])
        checks.append(
            Check("primary-direct", True, "reachable with TLS verify-full against the cluster's CA")
        )
    else:
        checks.append(
            Check(
                "primary-direct",
                False,
                primary if not ok else "PRIMARY direct connection is not encrypted",
            )
        )
    ok, row = try_psql(
        ctx.conn("primary_pool"),
        "SELECT 1",
        "connect to PRIMARY (primary-pool, verify-full)",
        pooled=True,
    )
    checks.append(
        Check(
            "primary-pool",
            ok,
            "reachable with TLS verify-full against the cluster's CA" if ok else row,
        )
    )
    try:
        dump_major = _major(run(["pg_dump", "--version"], what="pg_dump --version", echo=False))
        need = max(source_major, primary_major)
        checks.append(
            Check(
                "pg_dump",
                dump_major >= need,
                f"pg_dump {dump_major} for PostgreSQL {source_major} (source) and"
                f" {primary_major} (PRIMARY)"
                + ("" if dump_major >= need else ": install a newer PostgreSQL client"),
            )
        )
    except Failure as exc:
        checks.append(Check("pg_dump", False, str(exc)))
    ok, row = try_psql(ctx.conn("data_admin"), "SELECT version()", "connect to the DATA server")
    checks.append(Check("data-server", ok, row.split(" on ")[0] if ok else row))
    need_bytes = _disk(req, ctx, source_size, data_bytes, checks) if source_size else {}
    stale = _stale_split(ctx)
    return ProbeResult([c.__dict__ for c in checks], stale, need_bytes)
