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
    lines, problems = remote.judge(found, list(s.pm2_apps), pool_size)
    for line in lines:
        host.log(line)
    if problems:
        yield fail("first-hour check failed: " + "; ".join(problems))
        return
    host.noop("first-hour check passed")
