"""The ``--report`` JSON: per-table rows, bytes and seconds, skipped foreign keys, the objects
created on both targets or left out (resolutions), the cross-target dependencies, verify."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbsplit.errors import UsageError


@dataclass
class TableReport:
    table: str
    target: str
    parts: int = 0
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0


@dataclass
class MigrateReport:
    """What ``migrate`` did; filled in as it runs, written at the end."""

    tables: dict[str, TableReport] = field(default_factory=dict)
    skipped_fks: list[dict[str, str]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    already_done: bool = False
    verify: dict[str, Any] | None = None
    #: The source's write position at the snapshot (:class:`dbsplit.freeze.WritePosition`).
    source_position: dict[str, Any] | None = None
    #: Per target: objects created there too, objects left out (``[resolve] drop``).
    resolutions: dict[str, Any] = field(default_factory=dict)
    #: Every cross-target dependency that was resolved or dropped.
    dependencies: list[dict[str, Any]] = field(default_factory=list)

    def add_part(self, table: str, target: str, rows: int, nbytes: int, seconds: float) -> None:
        tr = self.tables.setdefault(table, TableReport(table, target))
        tr.parts += 1
        tr.rows += rows
        tr.bytes += nbytes
        tr.seconds += seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.verify is None or bool(self.verify.get("ok")),
            "seconds": round(self.seconds, 3),
            "already_done": self.already_done,
            "source_position": self.source_position,
            "tables": [
                {
                    "table": t.table,
                    "target": t.target,
                    "parts": t.parts,
                    "rows": t.rows,
                    "bytes": t.bytes,
                    "seconds": round(t.seconds, 3),
                }
                for t in sorted(self.tables.values(), key=lambda t: t.table)
            ],
            "skipped_foreign_keys": self.skipped_fks,
            "resolutions": self.resolutions,
            "dependencies": self.dependencies,
            "steps": self.steps,
            "verify": self.verify,
        }

    def write(self, path: Path) -> None:
        """Write the JSON atomically (a temporary file renamed over ``path``)."""
        write_json(path, self.to_json())


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically (a temporary file renamed over it)."""
    text = json.dumps(data, indent=2) + "\n"
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".dbsplit-report-", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(f"cannot write report {str(path)!r}: {exc.strerror}") from None
