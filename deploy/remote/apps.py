"""The VPS side's view of the app: pm2's status of each app, its health over HTTP, and
stopping and starting it.

``pm2 jlist`` holds every environment variable of every app (secrets included): it is parsed
here, on the VPS, and only name, status, restarts, pid and log paths leave this module.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deploy.remote.runtime import Failure, base_env, run, say
from deploy.remote.smoke import lookup

DOWN = "_unreachable"
"""The key :func:`get_health` sets when the app did not answer with JSON."""

#: pm2 statuses of an app that may still run code (and so write): everything but stopped.
RUNNING = ("online", "launching", "stopping", "waiting restart", "one-launch-status", "errored")


def pm2_status(apps: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Status of ``apps`` from ``pm2 jlist``, keeping only safe fields (jlist holds the env)."""
    try:
        proc = subprocess.run(
            ["pm2", "jlist"],
            env=base_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return {}
    text = proc.stdout
    start = text.find("[")
    try:
        entries = json.loads(text[start:]) if start >= 0 else []
    except ValueError:
        entries = []
    result: dict[str, dict[str, Any]] = {}
    for entry in entries:
        name = entry.get("name")
        if name not in apps:
            continue
        env = entry.get("pm2_env") or {}
        result[name] = {
            "status": env.get("status"),
            "restarts": env.get("restart_time"),
            "unstable_restarts": env.get("unstable_restarts"),
            "pid": entry.get("pid"),
            "uptime_since": env.get("pm_uptime"),
            "err_log": env.get("pm_err_log_path"),
            "out_log": env.get("pm_out_log_path"),
        }
    return result


def running(apps: Sequence[str]) -> list[str]:
    """The apps pm2 knows that are not stopped (online, errored, restarting...)."""
    return [n for n, s in pm2_status(apps).items() if s.get("status") in RUNNING]


def all_online(apps: Sequence[str]) -> bool:
    status = pm2_status(apps)
    return all(status.get(app, {}).get("status") == "online" for app in apps)


def stop(apps: Sequence[str]) -> list[str]:
    """``pm2 stop`` every app that is not stopped; returns the ones stopped."""
    busy = running(apps)
    if busy:
        run(["pm2", "stop", *busy], what="pm2 stop")
        left = running(apps)
        if left:
            raise Failure(f"pm2 stop left {', '.join(left)} running")
        say(f"pm2 stopped {', '.join(busy)}")
    return busy


def restart(app_dir: Path, ecosystem: str, apps: Sequence[str]) -> None:
    """``pm2 restart <apps> --update-env`` (or start them from the ecosystem file if absent)."""
    env = {"PATH": os.environ.get("PATH", "")}
    if all(name in pm2_status(apps) for name in apps):
        run(["pm2", "restart", *apps, "--update-env"], env=env, cwd=app_dir, what="pm2 restart")
    else:
        run(
            ["pm2", "start", ecosystem, "--only", ",".join(apps), "--update-env"],
            env=env,
            cwd=app_dir,
            what="pm2 start",
        )
    say(f"pm2 restarted {', '.join(apps)} with --update-env")


def get_health(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """``GET url`` as JSON (also on 503); ``{"status": "down", "error": ..., DOWN: True}`` when
    unreachable or not JSON."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            body: dict[str, Any] = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read().decode("utf-8"))
        except ValueError:
            return {"status": "down", "error": f"HTTP {exc.code}", DOWN: True}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return {"status": "down", "error": str(getattr(exc, "reason", exc)), DOWN: True}
    return body


def healthy(body: Mapping[str, Any], mode: str, contract: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether a health body shows ``mode`` with every database connected, and why not.

    ``contract`` (``health_contract`` in ``group_data/``) says how to read the body: ``ok``
    (path -> the value meaning healthy), ``mode`` (the path of the database mode, or None), and
    ``connected`` (database name -> the path of its "connected" flag; an ``error`` and a
    ``database`` beside that flag, when present, say why not and what is connected).
    """
    if body.get(DOWN):
        return False, f"API not answering ({body.get('error')})"
    mode_path = contract.get("mode")
    if mode_path and lookup(body, mode_path) != mode:
        return False, f"API in {lookup(body, mode_path)} mode, expected {mode}"
    problems = []
    described = []
    for name, path in sorted((contract.get("connected") or {}).items()):
        parent = lookup(body, path.rpartition(".")[0]) if "." in path else body
        parent = parent if isinstance(parent, Mapping) else {}
        if lookup(body, path) is not True:
            problems.append(f"{name} not connected ({parent.get('error', 'unknown error')})")
        else:
            described.append(f"{name} {parent.get('database', 'connected')}")
    for path, wanted in sorted((contract.get("ok") or {}).items()):
        if lookup(body, path) != wanted:
            problems.append(f"{path} {lookup(body, path)}")
    if problems:
        return False, "; ".join(problems)
    return True, ", ".join(described) or "ok"


def wait_healthy(
    url: str, mode: str, contract: Mapping[str, Any], timeout: float, interval: float = 1.0
) -> str:
    """Poll the health URL until it shows ``mode`` with both databases, or raise."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    while True:
        ok, why = healthy(get_health(url, timeout=3), mode, contract)
        if ok:
            say(f"healthy after {time.monotonic() - started:.1f}s: {mode} mode, {why}")
            return why
        if time.monotonic() >= deadline:
            raise Failure(f"not healthy after {timeout:.0f}s: {why}")
        time.sleep(interval)
