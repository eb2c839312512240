"""Remote side of step 5: ``dbsplit migrate`` on the VPS, and where the split stands.

``dbsplit migrate`` refuses by itself a source that is not frozen safely, and a copy taken from
another write position of the source; here it runs with ``--no-verify``: the verify step
follows and is recorded on its own. :func:`status` is ``dbsplit status``: the source's freeze
check and position, each target's copy state, the position its copy was taken at, and its own
write position, read from the databases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbsplit.progress import PROGRESS_SECONDS
from deploy.remote.journal import Journal, now
from deploy.remote.pg import dbsplit, dbsplit_json, read_report, report_path
from deploy.remote.runtime import Context, Failure, private_dir


@dataclass(frozen=True)
class DbsplitQuery:
    venv: str


@dataclass(frozen=True)
class SplitStatus:
    """``dbsplit status``: ``source`` is the freeze check, ``primary``/``data`` each target."""

    source: dict[str, Any] = field(default_factory=dict)
    primary: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.primary.get("split") == "done" and self.data.get("split") == "done"

    @property
    def started(self) -> bool:
        return any(t.get("split") in ("started", "done") for t in (self.primary, self.data))

    def copies_current_source(self) -> bool:
        """Both targets' copies were taken at the source's write position of now."""
        here = self.source.get("position")
        return all(t.get("source_mark") == here for t in (self.primary, self.data))


def dbsplit_env(ctx: Context) -> dict[str, str]:
    return {str(k): str(v) for k, v in ctx.secret("dbsplit_env").items()}


def status(req: DbsplitQuery, ctx: Context) -> SplitStatus:
    _, data = dbsplit_json(req.venv, ["status"], dbsplit_env(ctx))
    return SplitStatus(data.get("source") or {}, data.get("primary") or {}, data.get("data") or {})


@dataclass(frozen=True)
class Migrate:
    venv: str
    jobs: int
    extra_args: list[str] = field(default_factory=list)


def migrate(req: Migrate, ctx: Context) -> None:
    """``dbsplit migrate --no-verify`` (resumable), its report kept in the state directory."""
    with Journal(ctx).step("split") as journal:
        window = journal.window()
        report = report_path(ctx.state_dir, f"dbsplit-migrate-{window}.json")
        private_dir(report.parent)
        args = ["migrate", "--no-verify", "--jobs", str(req.jobs), *req.extra_args]
        env = {**dbsplit_env(ctx), PROGRESS_SECONDS: str(ctx.progress_every)}
        dbsplit(req.venv, [*args, "--report", str(report)], env)
        found = read_report(report)
        if found is None:
            raise Failure(f"dbsplit migrate wrote no report at {report}")
        rows = sum(int(t.get("rows", 0)) for t in found.get("tables", []))
        journal.update(
            "split",
            split={
                "done_at": now(),
                "report": str(report),
                "source_position": found.get("source_position"),
                "tables": len(found.get("tables", [])),
                "rows": rows,
                "seconds": found.get("seconds"),
            },
        )


@dataclass(frozen=True)
class ReportsQuery:
    """Nothing to ask: the reports of the window live in the state directory."""


@dataclass(frozen=True)
class Reports:
    """``{file name: sha1}`` of the window's dbsplit reports on the VPS, and their folder."""

    folder: str = ""
    files: dict[str, str] = field(default_factory=dict)


def reports(req: ReportsQuery, ctx: Context) -> Reports:
    import hashlib

    folder = report_path(ctx.state_dir, "x").parent
    window = Journal(ctx).state().get("window")
    files: dict[str, str] = {}
    if window and folder.is_dir():
        for path in sorted(folder.glob(f"*-{window}.json")):
            files[path.name] = hashlib.sha1(path.read_bytes()).hexdigest()  # noqa: S324
    return Reports(str(folder), files)


def plan(req: DbsplitQuery, ctx: Context) -> None:
    """``dbsplit plan``: fails (exit 1) when something blocks the copy; changes nothing."""
    dbsplit(req.venv, ["plan"], dbsplit_env(ctx))
