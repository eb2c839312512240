"""Remote side of the rollback's accounting: the rows the app wrote in split mode.

Once the app has run on the split, PRIMARY and DATA hold rows the old database never saw, and
going back to it abandons them. Nothing is abandoned silently: every table of both targets is
counted against the cut-over's transaction horizon (``_dbsplit.cutover``, also in the journal):

- ``written``: rows there now whose ``xmin`` is at or past the horizon (inserted or updated in
  split mode: ``age(xmin) <= age(horizon)``; rows dbsplit copied are older, or frozen);
- ``gone``: rows of the cut-over (verify's count) no longer there unchanged (deleted or updated
  in split mode; their old versions are still in the old database).

With any written or gone row the rollback refuses, naming them per table, unless the operator
says ``discard_split_writes``: then the written rows are first dumped (CSV per table, with a
manifest of every count) on the VPS and to Spaces, each file checked by SHA-256, and the
journal records where they went.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.remote import spaces
from deploy.remote.journal import Journal, now
from deploy.remote.pg import BOUNDED, ident, literal, psql
from deploy.remote.runtime import (
    Context,
    Failure,
    atomic_write,
    base_env,
    home_path,
    private_dir,
    say,
    scrub,
)

TARGETS = (("primary", "primary_direct"), ("data", "data"))


@dataclass(frozen=True)
class SplitWritesQuery:
    exclude_tables: list[str]
    backup_dir: str = ""
    key_prefix: str = ""
    bucket: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SplitWrites:
    """``tables``: ``"<target> <schema.table>" -> {"written", "gone", "rows", "at_cutover"}``
    for every table the app changed in split mode; ``unreachable``: targets not counted."""

    cut_over: bool = False
    window: str | None = None
    rolled_back: bool = False
    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    counted: int = 0
    unreachable: dict[str, str] = field(default_factory=dict)
    dumped: dict[str, Any] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return bool(self.tables)


def _horizon_sql(horizon: str) -> str:
    """``xid`` of a ``xid8`` horizon (its low 32 bits), as SQL."""
    return f"((({literal(horizon)}::xid8)::text::bigint % 4294967296)::text::xid)"


def _horizons(ctx: Context, state: dict[str, Any]) -> dict[str, str]:
    """The cut-over horizon per target: the journal's, else the target's own record."""
    recorded = (state.get("cutover") or {}).get("horizon") or {}
    if recorded:
        return {str(k): str(v) for k, v in recorded.items()}
    found: dict[str, str] = {}
    for name, conn in TARGETS:
        try:
            rows = psql(
                ctx.conn(conn),
                "SELECT CASE WHEN to_regclass('_dbsplit.cutover') IS NULL THEN ''"
                " ELSE (SELECT horizon::text FROM _dbsplit.cutover ORDER BY at DESC LIMIT 1) END",
                what=f"read {name}'s cut-over record",
            )
        except Failure:
            continue
        if rows and rows[0]:
            found[name] = rows[0]
    return found


def _tables(conn: dict[str, str], exclude: list[str]) -> list[str]:
    rows = psql(
        conn,
        "SELECT n.nspname || '.' || c.relname FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r'"
        " AND n.nspname NOT IN ('pg_catalog', 'information_schema', '_dbsplit')"
        " AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1",
        what="list the target's tables",
    )
    return [t for t in rows if t not in exclude]


def _count(
    conn: dict[str, str], tables: list[str], horizon_xid8: str
) -> dict[str, tuple[int, int]]:
    """``{table: (rows now, rows written since the horizon)}`` in one pass per table."""
    if not tables:
        return {}
    horizon = _horizon_sql(horizon_xid8)
    parts = []
    for name in tables:
        schema, _, table = name.partition(".")
        parts.append(
            f"SELECT {literal(name)}, count(*), count(*) FILTER (WHERE age(xmin) <="
            f" age({horizon})) FROM ONLY {ident(schema)}.{ident(table)}"
        )
    rows = psql(
        conn, " UNION ALL ".join(parts), what="count the rows written in split mode", timeout=600
    )
    out: dict[str, tuple[int, int]] = {}
    for row in rows:
        name, now_rows, written = row.rsplit("|", 2)
        out[name] = (int(now_rows), int(written))
    return out


def count(req: SplitWritesQuery, ctx: Context) -> SplitWrites:
    """Fact: the rows the app wrote on each target since the cut-over (see the docstring)."""
    state = Journal(ctx).state()
    if state.get("rolled_back"):
        return SplitWrites(
            cut_over=True,
            window=state.get("window"),
            rolled_back=True,
            dumped=state.get("split_writes_dumped") or {},
        )
    horizons = _horizons(ctx, state)
    if not horizons:
        return SplitWrites(cut_over=False, window=state.get("window"))
    at_cutover = (state.get("cutover") or {}).get("tables") or {}
    tables: dict[str, dict[str, int]] = {}
    unreachable: dict[str, str] = {}
    counted = 0
    for name, conn in TARGETS:
        if name not in horizons:
            unreachable[name] = "no cut-over record"
            continue
        try:
            found = _count(
                ctx.conn(conn), _tables(ctx.conn(conn), req.exclude_tables), horizons[name]
            )
        except Failure as exc:
            unreachable[name] = str(exc)
            continue
        counted += len(found)
        for table, (rows, written) in found.items():
            before = at_cutover.get(table, {})
            then = int(before.get("rows") or 0) if before.get("target") in (name, None) else 0
            gone = max(0, then - (rows - written))
            if written or gone:
                tables[f"{name} {table}"] = {
                    "written": written,
                    "gone": gone,
                    "rows": rows,
                    "at_cutover": then,
                }
    return SplitWrites(
        cut_over=True,
        window=state.get("window"),
        tables=tables,
        counted=counted,
        unreachable=unreachable,
        dumped=state.get("split_writes_dumped") or {},
    )


def describe(found: SplitWrites) -> str:
    """One line listing the tables the app changed in split mode."""
    parts = [
        f"{name}: {c['written']} written, {c['gone']} deleted or replaced"
        for name, c in sorted(found.tables.items())
    ]
    return "; ".join(parts[:8]) + (f" (and {len(parts) - 8} more tables)" if len(parts) > 8 else "")


def dump(req: SplitWritesQuery, ctx: Context) -> None:
    """Dump the rows written in split mode (CSV per table, with a manifest) to the VPS and to
    Spaces, each checked; the journal records where they are."""
    with Journal(ctx).step("split-writes-dump") as journal:
        found = count(req, ctx)
        if not found.any:
            say("no row was written in split mode: nothing to dump")
            return
        horizons = _horizons(ctx, journal.state())
        folder = private_dir(home_path(req.backup_dir) / f"split-writes-{found.window}")
        files: list[Path] = []
        for key, counts in sorted(found.tables.items()):
            target, table = key.split(" ", 1)
            if not counts["written"]:
                continue
            schema, _, name = table.partition(".")
            conn = ctx.conn(dict(TARGETS)[target])
            path = private_dir(folder / target) / f"{table}.csv"
            query = (
                f"COPY (SELECT * FROM ONLY {ident(schema)}.{ident(name)} WHERE age(xmin) <="
                f" age({_horizon_sql(horizons[target])})) TO STDOUT WITH (FORMAT csv, HEADER)"
            )
            with path.open("wb") as out:
                proc = subprocess.run(
                    ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", query],
                    env={**base_env(), **BOUNDED, **conn},
                    stdout=out,
                    stderr=subprocess.PIPE,
                    text=False,
                    check=False,
                    timeout=600,
                )
            if proc.returncode != 0:
                lines = [ln for ln in proc.stderr.decode(errors="replace").splitlines() if ln]
                raise Failure(
                    f"dumping {target} {table} failed: {scrub(lines[-1] if lines else '')}"
                )
            files.append(path)
        manifest = folder / "manifest.json"
        atomic_write(
            manifest,
            json.dumps(
                {"window": found.window, "at": now(), "horizons": horizons, "tables": found.tables},
                indent=2,
            ).encode(),
        )
        where = spaces.Bucket(**req.bucket)
        uploaded = [
            spaces.put_checked(
                where,
                ctx,
                path,
                f"{req.key_prefix}/split-writes-{found.window}/{path.relative_to(folder)}",
            )
            for path in [*files, manifest]
        ]
        say(f"dumped the rows written in split mode to {folder} and to Spaces ({len(files)} files)")
        journal.update(
            "split-writes-dump",
            split_writes_dumped={
                "at": now(),
                "folder": str(folder),
                "tables": found.tables,
                "uploaded": uploaded,
            },
        )


@dataclass(frozen=True)
class RollbackMark:
    """Nothing to ask: the journal says whether a window is open."""


@dataclass(frozen=True)
class RollbackState:
    window: str | None = None
    rolled_back: bool = False


def mark_state(req: RollbackMark, ctx: Context) -> RollbackState:
    state = Journal(ctx).state()
    return RollbackState(state.get("window"), bool(state.get("rolled_back")))


def mark(req: RollbackMark, ctx: Context) -> None:
    """Record that the app went back to the old database: PRIMARY and DATA are stale now."""
    with Journal(ctx).step("rollback") as journal:
        journal.update("rollback", rolled_back={"at": now(), "run": ctx.run})
        say("recorded the rollback: PRIMARY and DATA are stale until reset (reset_split.py)")
