"""What the deploy tests look at: the results table, the freeze, the journal, the backups."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from dbsplit.freeze import FreezeCheck, check
from standins.window import Run, Window


def assert_no_secret(window: Window, text: str, where: str) -> None:
    for secret in window.secret_values():
        assert secret not in text, f"a secret appears in {where}"


SMOKE_FEATURES = {
    "log in": "primary",
    "session": "primary",
    "create user": "primary",
    "edit user": "primary",
    "read back the user": "primary",
    "manage roles": "primary",
    "assign role": "primary",
    "upload CSV (through the web)": "data",
    "transform": "data",
    "export": "data",
    "integration history": "data",
    "session cache": "primary",
    "web page": "none",
    "web health": "none",
}
"""The checklist's features the smoke checks must cover, and the database each one touches."""


def assert_smoke_passed(checks: list[dict[str, Any]]) -> None:
    """A phase's smoke results: every feature checked on its database, each one passed with the
    status it expects, timed, and none of them skipped."""
    by_name = {c["name"]: c for c in checks}
    for name, database in SMOKE_FEATURES.items():
        assert name in by_name, f"no smoke check {name!r}: {sorted(by_name)}"
        assert by_name[name]["database"] == database, by_name[name]
    for result in checks:
        assert set(result) == {"name", "ok", "status", "ms", "database", "detail"}, result
        assert result["ok"] is True, result
        assert result["status"] in (200, 201), result
        assert result["ms"] > 0, result
        assert "skipped" not in result["detail"], result


def results(run: Run) -> dict[str, tuple[str, str, str]]:
    """The results table: operation name -> (success, error, no change)."""
    rows: dict[str, tuple[str, str, str]] = {}
    table = run.output.split("--> Results:", 1)[-1]
    for line in table.splitlines():
        match = re.match(r"\s+(.+?)\s+1\s+(\S+)\s+(\S+)\s+(\S+)\s*$", line)
        if match:
            rows[match.group(1)] = (match.group(2), match.group(3), match.group(4))
    return rows


def changed(run: Run) -> dict[str, tuple[str, str, str]]:
    """The operations of a run that changed something."""
    return {name: row for name, row in results(run).items() if row[0] != "-"}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def freeze_check(window: Window) -> FreezeCheck:
    """dbsplit's own freeze check of the source, as its superuser."""
    with window.vps.source.connect(window.vps.source_db) as conn:
        return check(conn, settle=0)


def frozen(window: Window) -> bool:
    return freeze_check(window).frozen


def state_dir(window: Window) -> Path:
    return window.vps.ssh.home / ".handled-deploy"


def journal(window: Window) -> list[dict[str, Any]]:
    path = state_dir(window) / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def window_state(window: Window) -> dict[str, Any]:
    path = state_dir(window) / "window.json"
    return json.loads(path.read_text()) if path.exists() else {}


def backups(window: Window) -> list[Path]:
    """The window dumps on the VPS (newest last)."""
    folder = window.vps.ssh.home / "backups"
    return sorted(folder.glob("handled-pre-split-*.dump"), key=lambda p: p.stat().st_mtime)


def count(window: Window, table: str, *, where: str = "source") -> int:
    if where == "source":
        return window.count(window.vps.source, window.vps.source_db, table)
    if where == "data":
        return window.count(window.data_pg, window.vps.data_db, table)
    return window.primary_count(table)


class SlackReceiver:
    """A real HTTP server standing in for a Slack incoming webhook: it records the ``text`` of
    each JSON body POSTed to its secret path; ``mode`` "hang" holds requests unanswered."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.mode = "ok"
        self.token = secrets.token_urlsafe(18)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.mode == "hang":
                    time.sleep(20)
                    return
                if self.path != receiver.path:
                    self.send_response(404)
                    self.end_headers()
                    return
                receiver.messages.append(str(json.loads(body)["text"]))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def path(self) -> str:
        return f"/services/T0HANDLED/B0DEPLOY/{self.token}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"

    def take(self) -> list[str]:
        """The messages received since the last call, oldest first."""
        found, self.messages[:] = list(self.messages), []
        return found

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ----- the watch on the VPS ---------------------------------------------------------------------

WATCH_MARKER = "# handled-watch"


def watch_dir(window: Window) -> Path:
    return state_dir(window) / "watch"


def crontab_line(window: Window) -> str | None:
    """The watch's line in the deploy user's crontab (read as root, as an operator would)."""
    user = window.vps.ssh.user
    proc = subprocess.run(["crontab", "-l", "-u", user], capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.endswith(WATCH_MARKER)]
    assert len(lines) <= 1, lines
    return lines[0] if lines else None


def tick(window: Window, line: str) -> None:
    """Run the crontab line's command exactly as cron would: ``/bin/sh -c`` as the deploy user,
    in its home, with cron's environment (HOME, LOGNAME, SHELL, PATH=/usr/bin:/bin)."""
    fields = line.split(None, 5)
    assert fields[:5] == ["*"] * 5, line
    ssh = window.vps.ssh
    env = [f"HOME={ssh.home}", f"LOGNAME={ssh.user}", "SHELL=/bin/sh", "PATH=/usr/bin:/bin"]
    argv = ["/usr/sbin/runuser", "-u", ssh.user, "--", "/bin/sh", "-c", fields[5]]
    subprocess.run(["env", "-i", *env, *argv], cwd="/", check=True, timeout=120)
    out = watch_dir(window) / "tick.out"
    assert "error" not in (out.read_text() if out.exists() else ""), out.read_text()


def watch_log(window: Window) -> str:
    path = watch_dir(window) / "watch.log"
    return path.read_text() if path.exists() else ""


def watch_elapsed(window: Window) -> float:
    """Seconds since the watch's schedule started."""
    schedule = json.loads((watch_dir(window) / "schedule.json").read_text())
    return time.time() - float(schedule["started"])


@contextlib.contextmanager
def readable_by_all(path: Path) -> Iterator[None]:
    """``path`` readable by every user for a while (as adding the deploy user to the group
    that owns the PostgreSQL logs would make it), its modes and its folders' restored after."""
    changed: list[tuple[Path, int]] = []
    try:
        for folder in reversed(path.parents):
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH:
                changed.append((folder, mode))
                folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
        mode = path.stat().st_mode
        changed.append((path, mode))
        path.chmod(stat.S_IMODE(mode) | stat.S_IROTH)
        yield
    finally:
        for item, mode in reversed(changed):
            item.chmod(stat.S_IMODE(mode))
