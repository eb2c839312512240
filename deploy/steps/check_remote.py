"""Remote side of the first-hour check: health, connections, pm2, recent error lines, smoke."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from deploy.remote.apps import get_health, healthy, pm2_status
from deploy.remote.pg import try_psql
from deploy.remote.runtime import Context, scrub
from deploy.remote.smoke import Smoke, run_phase


@dataclass(frozen=True)
class CheckQuery:
    health_url: str
    mode: str
    apps: list[str]
    health_contract: dict[str, Any] = field(default_factory=dict)
    smoke: dict[str, Any] = field(default_factory=dict)
    log_lines: int = 200
    error_pattern: str = r"(?i)\b(error|fatal|unhandled|ECONNREFUSED)\b"


@dataclass(frozen=True)
class CheckReport:
    healthy: bool = False
    health: str = ""
    connections: dict[str, Any] = field(default_factory=dict)
    pm2: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    lines_scanned: int = 0
    smoke: list[dict[str, Any]] = field(default_factory=list)


def report(req: CheckQuery, ctx: Context) -> CheckReport:
    """Fact for the first-hour check: health, connections, pm2, recent error lines, and the
    smoke checks (recorded in the journal as ``smoke["check"]``; what they create they delete,
    so the check leaves no row behind)."""
    ok, why = healthy(get_health(req.health_url), req.mode, req.health_contract)
    connections: dict[str, Any] = {}
    for name in ("primary_direct", "data"):
        good, row = try_psql(
            ctx.conn(name),
            # in use: not idle (a pool's idle server connections are capacity, not load)
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND state IS DISTINCT FROM 'idle'",
            f"count {name} connections",
        )
        connections[name.split("_")[0]] = int(row) if good else row
    pm2 = pm2_status(req.apps)
    errors: dict[str, list[str]] = {}
    pattern = re.compile(req.error_pattern)
    scanned = 0
    for name, status in pm2.items():
        lines: list[str] = []
        for key in ("err_log", "out_log"):
            path = status.pop(key, None)
            if not path or not os.path.exists(path):
                continue
            with open(path, encoding="utf-8", errors="replace") as handle:
                tail = handle.readlines()[-req.log_lines :]
            scanned += len(tail)
            lines += [scrub(line.rstrip()) for line in tail if pattern.search(line)]
        errors[name] = lines[-20:]
    results = []
    if req.smoke.get("checks"):
        results = run_phase(Smoke(**req.smoke), ctx, "check", req.mode)
    return CheckReport(ok, why, connections, pm2, errors, scanned, results)
