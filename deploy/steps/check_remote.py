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
    phase: str = "check"
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
        results = run_phase(Smoke(**req.smoke), ctx, req.phase, req.mode)
    return CheckReport(ok, why, connections, pm2, errors, scanned, results)


def judge(found: CheckReport, apps: list[str], pool_size: int) -> tuple[list[str], list[str]]:
    """A check's report as ``(lines to show, problems)``: no problem means it passed."""
    problems: list[str] = []
    lines = [f"health: {'ok' if found.healthy else 'FAILING'} ({found.health})"]
    if not found.healthy:
        problems.append(f"health: {found.health}")
    for name, count in sorted(found.connections.items()):
        if isinstance(count, int):
            lines.append(f"{name} connections in use: {count} (pool size {pool_size})")
            if name == "primary" and count >= pool_size:
                problems.append(f"{count} PRIMARY connections, pool size {pool_size}")
        else:
            problems.append(f"{name}: {count}")
    for app in apps:
        info = found.pm2.get(app)
        if info is None:
            problems.append(f"pm2 app {app} missing")
            continue
        lines.append(f"pm2 {app}: {info.get('status')}, {info.get('restarts')} restarts")
        if info.get("status") != "online":
            problems.append(f"pm2 app {app} is {info.get('status')}")
    lines.append(f"pm2 logs: {found.lines_scanned} recent lines scanned for errors")
    for app, errors in sorted(found.errors.items()):
        lines.append(f"{app}: {len(errors)} error line(s) in the recent logs")
        lines += [f"    {e}" for e in errors[-5:]]
        if errors:
            problems.append(f"{len(errors)} error line(s) in {app}'s recent logs")
    for result in found.smoke:
        mark = "ok" if result["ok"] else "FAILED"
        lines.append(
            f"smoke {mark}: {result['name']} [{result['database']}] {result['ms']:.0f} ms"
            f" ({result['detail']})"
        )
        if not result["ok"]:
            problems.append(f"smoke check {result['name']!r}: {result['detail']}")
    return lines, problems
