"""Remote side of the 48-hour watch: installed once, then ticked by cron every minute.

In ``<state_dir>/watch/`` (0700): ``request.json`` (0600: the tick's request line, modules and
secrets included, exactly what a step's action reads on stdin), ``tick.py`` (the bootstrap
that runs it), ``schedule.json`` (when the watch started, the checks' offsets, which ran, the
PostgreSQL logs' read positions) and ``watch.log`` (what the operator reads back). The user's
crontab holds one line, marked ``# handled-watch``::

    * * * * * cd && env PATH=... python3 .../tick.py < .../request.json >> .../tick.out 2>&1

Each tick runs at most one check, when one is due (missed ones are folded into it), appends it
to the log, notifies when it failed, and after the last check removes its crontab line.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.remote.apps import get_health
from deploy.remote.journal import Journal, now
from deploy.remote.notify import NotifyConfig, send, shape
from deploy.remote.pg import try_psql
from deploy.remote.runtime import (
    Context,
    Failure,
    atomic_write,
    base_env,
    home_path,
    private_dir,
    read_json,
    scrub,
)
from deploy.steps.check_remote import CheckQuery, judge, report

MARKER = "# handled-watch"
PG_ERROR = re.compile(r"\b(ERROR|FATAL|PANIC):")


@dataclass(frozen=True)
class WatchQuery:
    dir: str


@dataclass(frozen=True)
class WatchState:
    installed: bool = False
    request_sha: str = ""
    started_at: str = ""
    checks: int = 0
    done: int = 0
    finished_at: str = ""
    window: str = ""  # the window the schedule watches
    current: str = ""  # the window the journal holds now


@dataclass(frozen=True)
class WatchInstall:
    dir: str
    offsets: list[int]
    bootstrap: str
    pg_logs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Tick:
    """The tick's settings (its secrets travel beside: connections, the CA, the notifier)."""

    dir: str
    health_url: str
    apps: list[str]
    pool_size: int
    max_response_ms: int
    pg_logs: dict[str, str] = field(default_factory=dict)
    emails: list[str] = field(default_factory=list)
    sender: str = ""
    label: str = ""
    health_contract: dict[str, Any] = field(default_factory=dict)
    smoke: dict[str, Any] = field(default_factory=dict)


# ----- crontab ----------------------------------------------------------------------------------


def _crontab() -> list[str]:
    """The user's crontab lines ([] when there is none)."""
    try:
        proc = subprocess.run(
            ["crontab", "-l"], env=base_env(), capture_output=True, text=True, timeout=30
        )
    except FileNotFoundError:
        raise Failure("crontab is not installed on the VPS (apt-get install cron)") from None
    if proc.returncode != 0:
        if "no crontab" in proc.stderr:
            return []
        raise Failure(f"crontab -l failed: {scrub(proc.stderr.strip())}")
    return proc.stdout.splitlines()


def _set_crontab(lines: list[str]) -> None:
    text = "".join(f"{line}\n" for line in lines)
    proc = subprocess.run(
        ["crontab", "-"], input=text, env=base_env(), capture_output=True, text=True, timeout=30
    )
    if proc.returncode != 0:
        raise Failure(f"crontab - failed: {scrub(proc.stderr.strip())}")


def cron_line(folder: Path) -> str:
    """The crontab line that ticks the watch every minute (cron's PATH is too short for pm2
    and psql: the line carries the deploy session's)."""
    path = os.environ.get("PATH", "/usr/bin:/bin")
    return (
        f"* * * * * cd && env PATH={_q(path)} {_q(sys.executable)} {_q(str(folder / 'tick.py'))}"
        f" < {_q(str(folder / 'request.json'))} >> {_q(str(folder / 'tick.out'))} 2>&1 {MARKER}"
    )


def _q(text: str) -> str:
    if re.search(r"[^\w@%+=:,./-]", text) or "%" in text:
        if "%" in text or "'" in text:
            raise Failure(f"cannot put {text!r} in a crontab line")
        return f"'{text}'"
    return text


# ----- install ----------------------------------------------------------------------------------


def state(req: WatchQuery, ctx: Context) -> WatchState:
    """Fact: whether the watch is installed, with which request, and how far it is."""
    folder = home_path(req.dir)
    schedule = read_json(folder / "schedule.json") or {}
    request = folder / "request.json"
    digest = ""
    if request.exists():
        digest = hashlib.sha256(request.read_bytes()).hexdigest()
    return WatchState(
        installed=any(line.endswith(MARKER) for line in _crontab()),
        request_sha=digest,
        started_at=str(schedule.get("started_at", "")),
        checks=len(schedule.get("offsets", [])),
        done=len(schedule.get("done", [])),
        finished_at=str(schedule.get("finished_at", "")),
        window=str(schedule.get("window") or ""),
        current=str(Journal(ctx).state().get("window") or ""),
    )


def install(req: WatchInstall, ctx: Context) -> None:
    """Write the tick's request and bootstrap, start the schedule (kept when it runs already),
    and put the crontab line in (once)."""
    folder = private_dir(home_path(req.dir))
    atomic_write(folder / "request.json", str(ctx.secret("tick_request")).encode())
    atomic_write(folder / "tick.py", (req.bootstrap + "\n").encode(), mode=0o600)
    schedule = read_json(folder / "schedule.json")
    window = Journal(ctx).state().get("window")
    if (
        not isinstance(schedule, dict)
        or schedule.get("finished_at")
        or (schedule.get("window") != window)
    ):
        positions = {name: _size(path) for name, path in req.pg_logs.items()}
        schedule = {
            "window": window,  # what finalize asks the watch about
            "started_at": now(),
            "started": time.time(),
            "offsets": sorted(set(req.offsets)),
            "done": [],
            "log_positions": positions,
        }
        atomic_write(folder / "schedule.json", json.dumps(schedule, indent=2).encode())
    lines = [line for line in _crontab() if not line.endswith(MARKER)]
    _set_crontab([*lines, cron_line(folder)])
    print(
        f"watch installed: {len(schedule['offsets'])} checks from {schedule['started_at']},"
        f" log {folder / 'watch.log'}",
        flush=True,
    )


def _size(path: str) -> int:
    """Where the watch starts reading ``path``: its end now (-1: unknown, its end when first
    read), so only lines written after the install count."""
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


# ----- the tick ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _only_one(folder: Path) -> Iterator[bool]:
    with (folder / ".tick.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tick(req: Tick, ctx: Context) -> None:
    """Run the check that is due (if any), log it, notify on failure, remove the watch after
    its last check."""
    folder = home_path(req.dir)
    with _only_one(folder) as alone:
        if not alone:
            return
        schedule = read_json(folder / "schedule.json")
        if not isinstance(schedule, dict) or schedule.get("finished_at"):
            _remove_line()
            return
        elapsed = time.time() - float(schedule["started"])
        offsets: list[int] = schedule["offsets"]
        due = [o for o in offsets if o <= elapsed and o not in schedule["done"]]
        if not due:
            return
        lines, problems = _check(req, ctx, schedule)
        schedule["done"] += due
        schedule["failed"] = int(schedule.get("failed") or 0) + bool(problems)
        number = len(schedule["done"])
        last = len(schedule["done"]) >= len(offsets)
        verdict = "FAILED" if problems else "ok"
        head = (
            f"{now()} check {number}/{len(offsets)} (+{_span(max(due))}"
            f"{f', {len(due) - 1} missed folded in' if len(due) > 1 else ''}): {verdict}"
        )
        if problems:
            lines.append("problems: " + "; ".join(problems))
        if last:
            schedule["finished_at"] = now()
            lines.append(f"the watch is over: {number} checks since {schedule['started_at']}")
        _append(folder / "watch.log", [head, *(f"    {line}" for line in lines)])
        atomic_write(folder / "schedule.json", json.dumps(schedule, indent=2).encode())
        config = NotifyConfig(
            ctx.secret("slack_webhook") if ctx.has("slack_webhook") else "",
            list(req.emails),
            ctx.secret("smtp_url") if ctx.has("smtp_url") else "",
            req.sender,
            req.label,
        )
        messages = []
        if problems:
            messages.append(f"watch {head.split(' ', 1)[1]}: " + "; ".join(problems))
        if last:
            messages.append(f"the 48-hour watch is over: {number} checks, log {folder}/watch.log")
            _remove_line()
        for message in messages if config.enabled else []:
            for failure in send(config, shape(config, message)):
                _append(folder / "watch.log", [f"    notification not sent: {failure}"])


def _remove_line() -> None:
    lines = _crontab()
    if any(line.endswith(MARKER) for line in lines):
        _set_crontab([line for line in lines if not line.endswith(MARKER)])


def _span(seconds: int) -> str:
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 60 else f"{seconds}s"


def _append(path: Path, lines: list[str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, "".join(scrub(line) + "\n" for line in lines).encode())
    finally:
        os.close(fd)


def _check(req: Tick, ctx: Context, schedule: dict[str, Any]) -> tuple[list[str], list[str]]:
    """What ``deploy/check.py`` checks, plus response time, PostgreSQL's error lines since the
    last check and replication slots."""
    started = time.monotonic()
    get_health(req.health_url)
    ms = int((time.monotonic() - started) * 1000)
    found = report(
        CheckQuery(
            req.health_url, "split", list(req.apps), req.health_contract, req.smoke, "watch"
        ),
        ctx,
    )
    lines, problems = judge(found, list(req.apps), req.pool_size)
    lines.append(f"response time: {ms} ms (limit {req.max_response_ms} ms)")
    if ms > req.max_response_ms:
        problems.append(f"response time {ms} ms over {req.max_response_ms} ms")
    positions: dict[str, int] = schedule.setdefault("log_positions", {})
    for name, path in sorted(req.pg_logs.items()):
        errors, note = _log_errors(path, positions, name)
        lines.append(f"{name} PostgreSQL log {path}: {note}")
        lines += [f"    {e}" for e in errors[-5:]]
        if errors:
            problems.append(f"{len(errors)} ERROR/FATAL line(s) in {name}'s PostgreSQL log")
    for name in ("primary_direct", "data"):
        good, row = try_psql(
            ctx.conn(name),
            "SELECT coalesce(string_agg(slot_name || ' active=' || active || ' retains '"
            " || pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)), ', '),"
            " 'none') || '|' || count(*) FILTER (WHERE NOT active) FROM pg_replication_slots",
            f"replication slots on {name}",
        )
        label = name.split("_")[0]
        if not good:
            lines.append(f"{label} replication slots: not readable ({row})")
            continue
        slots, _, inactive = row.rpartition("|")
        lines.append(f"{label} replication slots: {slots}")
        if inactive not in ("", "0"):
            problems.append(f"{inactive} inactive replication slot(s) on {label} retain WAL")
    return lines, problems


def _log_errors(path: str, positions: dict[str, int], name: str) -> tuple[list[str], str]:
    """ERROR/FATAL/PANIC lines written to ``path`` since the last check, and what was read."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            start = positions.get(name, -1)
            if start < 0:  # unreadable at the install: lines from now on
                positions[name] = size
                return [], "readable from now on: its new lines count from the next check"
            start = 0 if start > size else start  # rotated: read the new file from its start
            handle.seek(start)
            text = handle.read(size - start).decode("utf-8", "replace")
    except OSError as exc:
        return [], f"not readable ({exc.strerror})"
    positions[name] = size
    lines = text.splitlines()
    errors = [scrub(line.strip()) for line in lines if PG_ERROR.search(line)]
    return errors, f"{len(lines)} new line(s) scanned, {len(errors)} ERROR/FATAL"
