"""What the deploy tests look at: the results table, the freeze, the journal, the backups."""

from __future__ import annotations

import hashlib
import json
import re
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
