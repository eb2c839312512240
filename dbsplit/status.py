"""Where the split stands, read from the databases themselves (``dbsplit status``).

For the source: the freeze check (:func:`dbsplit.freeze.check`) with its write position. For
each target: how far dbsplit's copy got (``none``, ``started``, ``done``), the source position
its copy was taken at, and the target's own write position (its routed tables only: dbsplit's
bookkeeping and the excluded tables, such as each database's own ``_prisma_migrations``, are
left out). The deploy compares these with what it recorded: a verify is trusted only while
the source and both targets are still where they were when it passed.

Example (abridged)::

    $ dbsplit status --json
    {"source": {"frozen": true, "ok": true, "problems": [], "position": {"digest": ...}},
     "primary": {"split": "done", "source_mark": {"digest": ...}, "position": {...}},
     "data": {...}}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from dbsplit import freeze as freezing
from dbsplit import state, watchdog
from dbsplit.catalog import BOOKKEEPING_SCHEMA
from dbsplit.config import SplitConfig, Target
from dbsplit.connect import connect
from dbsplit.urls import PgUrl


@dataclass(frozen=True)
class TargetStatus:
    """One target's split state and write position."""

    split: str
    source_mark: dict[str, Any] | None
    position: freezing.WritePosition

    def to_json(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "source_mark": self.source_mark,
            "position": self.position.to_json(),
        }


@dataclass(frozen=True)
class Status:
    """The source's freeze check and both targets' state."""

    source: freezing.FreezeCheck
    targets: dict[Target, TargetStatus]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source.to_json()}
        out.update({t.value: s.to_json() for t, s in self.targets.items()})
        return out

    def render(self) -> str:
        src = self.source
        lines = [
            f"source {src.database}: "
            + ("frozen" if src.ok else ("frozen, with problems" if src.frozen else "writable"))
        ]
        lines += [f"  - {p}" for p in src.problems]
        for t, ts in self.targets.items():
            lines.append(
                f"{t.value.upper()}: split {ts.split}, {ts.position.writes} row writes counted"
            )
        return "\n".join(lines)


def target_position(conn: psycopg.Connection[Any], config: SplitConfig) -> freezing.WritePosition:
    """A target's write position over what it holds of the split."""
    return freezing.write_position(
        conn, skip_schemas=(BOOKKEEPING_SCHEMA,), skip_tables=config.exclude_tables
    )


def target_status(conn: psycopg.Connection[Any], config: SplitConfig) -> TargetStatus:
    steps = state.done_steps(conn)
    split = "done" if state.STEP_DONE in steps else ("started" if steps else "none")
    return TargetStatus(split, state.source_mark(conn), target_position(conn, config))


def status(*, source: PgUrl, primary: PgUrl, data: PgUrl, config: SplitConfig) -> Status:
    """Read the source's freeze check and both targets' state (writes nothing)."""
    with connect(source, what="source", autocommit=True, short_statements=True) as conn:
        check = freezing.check(conn)
    targets: dict[Target, TargetStatus] = {}
    for target, url in ((Target.PRIMARY, primary), (Target.DATA, data)):
        with connect(
            url, what=target.value.upper(), autocommit=True, short_statements=True
        ) as conn:
            targets[target] = target_status(conn, config)
    return Status(check, targets)


def positions(
    *, source: PgUrl, primary: PgUrl, data: PgUrl, config: SplitConfig
) -> dict[str, freezing.WritePosition]:
    """The write positions of the source and both targets now."""
    found: dict[str, freezing.WritePosition] = {}
    with connect(source, what="source", autocommit=True, short_statements=True) as conn:
        found["source"] = freezing.write_position(conn)
    for target, url in ((Target.PRIMARY, primary), (Target.DATA, data)):
        with connect(
            url, what=target.value.upper(), autocommit=True, short_statements=True
        ) as conn:
            found[target.value] = target_position(conn, config)
    return found


def verify_with_positions(
    *, source: PgUrl, primary: PgUrl, data: PgUrl, config: SplitConfig, jobs: int
) -> tuple[dict[str, Any], bool]:
    """Verify, with every database's write position read before and after.

    The JSON report gains ``positions`` (what the comparison holds for: the deploy trusts the
    result only while every database is still there) and the result fails when a position
    moved while verify ran, since the comparison then saw a moving target.
    """
    from dbsplit.verify import verify

    with watchdog.doing("verify"):
        before = positions(source=source, primary=primary, data=data, config=config)
        report = verify(source=source, primary=primary, data=data, config=config, jobs=jobs)
        after = positions(source=source, primary=primary, data=data, config=config)
    failures = list(report.failures())
    for name, was in before.items():
        why = after[name].moved_since(was)
        if why:
            label = name if name == "source" else name.upper()
            failures.append(f"{label} changed while verify ran ({why})")
    found = report.to_json()
    found["positions"] = {name: p.to_json() for name, p in after.items()}
    found["failures"] = failures
    found["ok"] = not failures
    rendered = report.render()
    if len(failures) > len(report.failures()):
        rendered += "\n" + "\n".join(failures[len(report.failures()) :])
    found["rendered"] = rendered
    return found, not failures
