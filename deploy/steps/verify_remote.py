"""Remote side of step 6: verify, and the gate the cut-over must pass.

``dbsplit verify`` compares both targets with the source and reads every database's write
position before and after; the journal records the result, the run that took it and the
positions it holds for. The gate (:func:`gate`) is what the cut-over requires, re-established
from the databases each time, never taken from a marker:

- the source is frozen safely now (``dbsplit status``: no role but superusers may connect, no
  other session, no prepared transaction);
- both targets hold a finished copy taken at the source's write position of now (so the source
  did not change since the copy's snapshot);
- a verify **of this run** passed, and every database is still at the position it held for
  (so nothing changed on the targets since it passed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deploy.remote.journal import Journal, now
from deploy.remote.pg import dbsplit, read_report, report_path
from deploy.remote.runtime import Context, Failure, private_dir
from deploy.steps.split_remote import DbsplitQuery, SplitStatus, dbsplit_env, status


@dataclass(frozen=True)
class VerifyRun:
    venv: str
    jobs: int = 4


@dataclass(frozen=True)
class Gate:
    """Whether the cut-over may happen, and every reason it may not."""

    passed: bool = False
    reasons: list[str] = field(default_factory=list)
    cut_over: bool = False
    verified_at: str | None = None
    verify_run: str | None = None
    positions: dict[str, Any] = field(default_factory=dict)


def verify(req: VerifyRun, ctx: Context) -> None:
    """``dbsplit verify``; the journal records the result and the positions it holds for."""
    with Journal(ctx).step("verify") as journal:
        window = journal.window()
        report = report_path(ctx.state_dir, f"dbsplit-verify-{window}.json")
        private_dir(report.parent)
        failed: Failure | None = None
        try:
            dbsplit(
                req.venv,
                ["verify", "--jobs", str(req.jobs), "--report", str(report)],
                dbsplit_env(ctx),
            )
        except Failure as exc:
            failed = exc
        found = read_report(report)
        if found is None:
            raise failed or Failure(f"dbsplit verify wrote no report at {report}")
        failures = [str(f) for f in found.get("failures") or []]
        tables = {
            f"{t.get('schema')}.{t.get('name')}": {
                "target": t.get("target"),
                "rows": t.get("target_rows"),
                "status": t.get("status"),
            }
            for t in found.get("tables") or []
        }
        journal.update(
            "verify",
            verify={
                "ok": bool(found.get("ok")) and failed is None,
                "at": now(),
                "run": ctx.run,
                "positions": found.get("positions") or {},
                "failures": failures[:20],
                "tables": tables,
                "report": str(report),
            },
        )
        if failed is not None or not found.get("ok"):
            shown = "; ".join(failures[:3]) or str(failed)
            more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
            raise Failure(
                f"verify found {len(failures)} difference(s) between the source and the targets:"
                f" {shown}{more}. The window stops here: nothing was switched; fix the targets"
                " (or roll back and reset) and run the window again"
            )


def judge(found: SplitStatus, state: dict[str, Any], run: str) -> Gate:
    """The gate over ``dbsplit status`` now and the window's recorded facts (pure)."""
    reasons: list[str] = []
    source = found.source
    if not source.get("ok"):
        problems = source.get("problems") or ["the source is not frozen"]
        reasons.append("the source is not frozen safely: " + "; ".join(problems))
    if not found.done:
        reasons.append("the copy has not finished on both targets")
    elif not found.copies_current_source():
        reasons.append(
            "the source changed since the copy's snapshot: the targets lack those writes"
        )
    check = state.get("verify") or {}
    now_positions = {
        "source": source.get("position"),
        "primary": found.primary.get("position"),
        "data": found.data.get("position"),
    }
    if not check:
        reasons.append("no verify has passed")
    elif not check.get("ok"):
        reasons.append("the last verify found differences")
    elif check.get("run") != run:
        reasons.append("the verify that passed was taken by an earlier run")
    else:
        moved = [
            name
            for name, position in now_positions.items()
            if (check.get("positions") or {}).get(name) != position
        ]
        if moved:
            reasons.append(f"{', '.join(moved)} changed since verify passed at {check.get('at')}")
    return Gate(
        passed=not reasons,
        reasons=reasons,
        cut_over=bool(state.get("cutover")),
        verified_at=check.get("at"),
        verify_run=check.get("run"),
        positions=now_positions,
    )


def gate(req: DbsplitQuery, ctx: Context) -> Gate:
    """Fact: may the window cut over now? (see the module docstring)"""
    return judge(status(req, ctx), Journal(ctx).state(), ctx.run)
