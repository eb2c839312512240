"""The 48-hour watch: the operation that installs it on the VPS (idempotent)."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

from pyinfra.api.exceptions import DeployError
from pyinfra.api.operation import operation
from pyinfra.context import host

from deploy.notify import config_of
from deploy.remote import BOOTSTRAP
from deploy.steps import Commands, clean, fact, run
from deploy.steps import watch_remote as remote
from deploy.window import Window


@dataclass(frozen=True)
class WatchSettings:
    """``watch_*`` in ``group_data/``: the schedule as ``[until, every]`` pairs in seconds from
    the install, the slowest health answer that passes, the PostgreSQL logs to scan."""

    schedule: tuple[tuple[int, int], ...]
    max_response_ms: int
    pg_logs: dict[str, str]

    @classmethod
    def of(cls, data: Any) -> WatchSettings:
        schedule = tuple((int(u), int(e)) for u, e in data.get("watch_schedule") or ())
        if not schedule or any(every <= 0 or until <= 0 for until, every in schedule):
            raise DeployError(f"watch_schedule must list [until, every] seconds, not {schedule!r}")
        return cls(
            schedule=schedule,
            max_response_ms=int(data.get("watch_max_response_ms") or 2000),
            pg_logs={str(k): str(v) for k, v in (data.get("watch_pg_logs") or {}).items()},
        )

    def offsets(self) -> list[int]:
        """When the checks run, in seconds after the install: one at once, then each phase's
        interval up to its end (the checklist: 15 min to 1 h, hourly to 24 h, 4-hourly to 48 h).
        """
        found, at = [0], 0
        for until, every in self.schedule:
            while at + every <= until:
                at += every
                found.append(at)
        return found


def folder(window: Window) -> str:
    return f"{window.settings.state_dir.rstrip('/')}/watch"


def tick_line(window: Window, watch: WatchSettings) -> str:
    """The tick's request line as the VPS stores it (a fixed run id, so it compares equal)."""
    s = window.settings
    notify = config_of(window)
    secrets: dict[str, Any] = {
        "primary_direct": window.primary_direct(),
        "data": window.data(),
        "ca_pem": window.ca_pem(),
        **window.smoke_secrets(),
    }
    if notify.slack_webhook:
        secrets["slack_webhook"] = notify.slack_webhook
    if notify.smtp_url:
        secrets["smtp_url"] = notify.smtp_url
    args = remote.Tick(
        dir=folder(window),
        health_url=s.health_url,
        apps=list(s.pm2_apps),
        pool_size=window.stack.pool_size,
        max_response_ms=watch.max_response_ms,
        pg_logs=watch.pg_logs,
        emails=list(notify.emails),
        sender=notify.sender,
        label=notify.label,
        health_contract=dict(s.health_contract),
        smoke=dataclasses.asdict(window.smoke()),
    )
    fixed = dataclasses.replace(window, run="watch", runbook="watch")
    return fixed.request(remote.tick, args, **secrets).readlines()[0]


@operation()
@clean
def watch_installed(window: Window) -> Commands:
    """
    Install the 48-hour watch: the tick's request, its bootstrap, the schedule and one crontab
    line that ticks every minute; each check is logged, a failed one notified.

    + window: the host's settings, stack outputs and secrets

    Updates: only when the watch is not installed, or its request (code, settings, secrets)
    changed; the schedule, once started, is kept; a finished watch of this window is left
    alone (a new window's watch starts a new schedule).
    """
    watch = WatchSettings.of(host.data)
    line = tick_line(window, watch)
    found = fact(window, remote.state, remote.WatchQuery(folder(window)))
    log = f"{folder(window)}/watch.log"
    if found.finished_at and found.window == found.current:
        host.noop(f"the watch finished at {found.finished_at} after {found.done} checks ({log})")
        return
    if found.installed and found.request_sha == hashlib.sha256(line.encode()).hexdigest():
        host.noop(
            f"watch installed since {found.started_at}: {found.done}/{found.checks} checks"
            f" run ({log})"
        )
        return
    yield run(
        window,
        remote.install,
        remote.WatchInstall(folder(window), watch.offsets(), BOOTSTRAP, watch.pg_logs),
        tick_request=line,
    )
