"""The first-hour check: the operation (it changes nothing)."""

from __future__ import annotations

import dataclasses

from pyinfra.api.operation import operation
from pyinfra.context import host

from deploy.steps import Commands, clean, fact, fail
from deploy.steps import check_remote as remote
from deploy.window import Window


@operation()
@clean
def first_hour_check(window: Window) -> Commands:
    """
    Health, connections in use on both databases against the pool size, pm2 status and
    restart counts, error lines in the recent pm2 logs, the smoke checks; fails when any is
    wrong.

    + window: the host's settings and secrets

    Updates: nothing.
    """
    s = window.settings
    pool_size = window.stack.pool_size
    found = fact(
        window,
        remote.report,
        remote.CheckQuery(
            s.health_url,
            "split",
            list(s.pm2_apps),
            dict(s.health_contract),
            dataclasses.asdict(window.smoke()),
        ),
        **window.smoke_secrets(),
        primary_direct=window.primary_direct(),
        data=window.data(),
        ca_pem=window.ca_pem(),
    )
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
    for app in s.pm2_apps:
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
    for line in lines:
        host.log(line)
    if problems:
        yield fail("first-hour check failed: " + "; ".join(problems))
        return
    host.noop("first-hour check passed")
