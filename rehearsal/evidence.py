"""Evidence for the checklist from what the window recorded on the (stand-in) VPS.

The deploy's journal (``~/.handled-deploy/window.json`` on the VPS) holds the facts each step
established in this run: the backup's size, checksum and write position, its upload read back,
the verify that passed, the ``.env`` written, the build, the cut-over. Each proof below is made
from those facts, or from what the rehearsal reads itself (the CA file on the VPS against the
stack's certificate), and fails when the fact is missing or does not hold.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from rehearsal.model import Rehearsal
from standins.window import Window as World


def journal_state(world: World | None) -> dict[str, Any]:
    """The VPS's current window facts ({} when none)."""
    if world is None:
        return {}
    path = world.vps.ssh.home / ".handled-deploy" / "window.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def window_facts(r: Rehearsal, world: World | None) -> None:
    """Prove the backup, its upload, the DATA database, the CA, the build and the restart."""
    state = journal_state(world)
    backup = state.get("backup") or {}
    split = state.get("split") or {}
    frozen_copy = bool(backup.get("sha256")) and backup.get("position") == split.get(
        "source_position"
    )
    r.prove(
        "deploy.backup",
        frozen_copy,
        f"pg_dump -Fc of the frozen source in window {state.get('window')}: {backup.get('size')}"
        f" bytes, sha256 {str(backup.get('sha256'))[:16]}…, at the copy's write position"
        if frozen_copy
        else f"no backup at the copy's write position ({backup or 'none'})",
    )
    uploaded = state.get("backup_uploaded") or {}
    r.prove(
        "deploy.backup_upload",
        bool(uploaded) and uploaded.get("sha256") == backup.get("sha256"),
        f"s3://{uploaded.get('bucket')}/{uploaded.get('key')}: {uploaded.get('size')} bytes read"
        " back, sha256 equal to the dump's",
    )
    data = state.get("data_database") or {}
    r.prove(
        "deploy.data_db",
        bool(data.get("database")),
        f"DATA database {data.get('database')} owned by {data.get('role')} (journal)",
    )
    ca_ok, ca_text = _ca(world)
    r.prove("deploy.ca", ca_ok, ca_text)
    built = state.get("app_built")
    r.prove(
        "deploy.app_build",
        bool(built),
        f"pnpm install, db:generate, db:migrate:primary, db:migrate:data, build: built for"
        f" sources and .env digest {str(built)[:16]}…",
    )
    cutover = state.get("cutover") or {}
    restarted = bool(state.get("restarted_at")) and state.get("app_restarted") == built
    r.prove(
        "deploy.restart",
        restarted and bool(cutover),
        f"pm2 restart --update-env at {state.get('restarted_at')}, through the cut-over gate"
        f" (horizon {cutover.get('horizon')})",
    )


def _ca(world: World | None) -> tuple[bool, str]:
    if world is None:
        return False, "no stand-ins"
    outputs = json.loads(world.stack_outputs().read_text(encoding="utf-8"))
    path = Path(str(outputs["caCertPath"]))
    found = path.read_text(encoding="ascii") if path.exists() else ""
    same = found == outputs["caCertificate"]
    return same, f"{path} on the VPS holds the stack's caCertificate: {same}"


def split_writes_refused(r: Rehearsal, output: str) -> None:
    """The rollback refused, naming the tables the app wrote in split mode."""
    found = re.search(r"rollback refused: the app wrote in split mode[^\n]*", output)
    named = re.findall(r"(?:primary|data) \S+: (\d+) written", found.group(0)) if found else []
    r.prove(
        "rollback.split_writes",
        bool(named) and sum(int(n) for n in named) > 0,
        found.group(0)[:300] if found else "the rollback did not refuse",
    )


def split_writes_dumped(r: Rehearsal, world: World | None) -> None:
    """The discarded rows are in the dump on the VPS and in Spaces."""
    dumped = journal_state(world).get("split_writes_dumped") or {}
    tables = dumped.get("tables") or {}
    written = sum(int(c.get("written", 0)) for c in tables.values())
    uploaded = dumped.get("uploaded") or []
    r.prove(
        "rollback.dumped",
        written > 0 and len(uploaded) > len([c for c in tables.values() if c.get("written")]),
        f"{written} rows written in split mode dumped to {dumped.get('folder')} and"
        f" {len(uploaded)} files to Spaces (each read back by sha256) before the rollback",
    )
