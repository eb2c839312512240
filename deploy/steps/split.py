"""Step 5: the data migration on the VPS, its reports brought back (the operations)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pyinfra.api.command import FileDownloadCommand
from pyinfra.api.operation import operation
from pyinfra.context import host

from deploy.steps import Commands, clean, fact, fail, live, run
from deploy.steps import split_remote as remote
from deploy.window import Window


def secrets(window: Window) -> dict[str, Any]:
    return {"dbsplit_env": window.dbsplit_env(), "ca_pem": window.ca_pem()}


def status(window: Window) -> remote.SplitStatus:
    """``dbsplit status`` on the VPS."""
    return fact(window, remote.status, remote.DbsplitQuery(window.settings.venv), **secrets(window))


@operation()
@clean
def split_plan_clear(window: Window) -> Commands:
    """
    Run ``dbsplit plan`` on the VPS and stop the window if it reports blockers.

    + window: the host's settings and secrets

    Updates: nothing, ever; skipped once the split has finished.
    """
    if status(window).done:
        host.noop("the split has finished: no plan needed")
        return
    yield run(window, remote.plan, remote.DbsplitQuery(window.settings.venv), **secrets(window))


@operation()
@clean
def split_migrated(window: Window) -> Commands:
    """
    ``dbsplit migrate`` on the VPS (the cluster trusts only its IP); it refuses a source that
    is not frozen safely and resumes an interrupted copy.

    + window: the host's settings (``dbsplit_jobs``, ``dbsplit_migrate_args``) and secrets

    Updates: nothing once both targets hold a finished copy of the source as it is now; a
    finished copy of an older state of the source stops the window.
    """
    found = status(window)
    if found.done and found.copies_current_source():
        host.noop("dbsplit migrate has finished on PRIMARY and DATA, from the source as it is")
        return
    if found.done:
        yield fail(
            "the source changed since PRIMARY and DATA were copied (its write position moved):"
            " they lack those writes; roll back (deploy/rollback.py) and reset them"
            " (deploy/reset_split.py) before a new window"
        )
        return
    s = window.settings
    args = remote.Migrate(s.venv, s.dbsplit_jobs, list(s.dbsplit_migrate_args))
    yield live(window, remote.migrate, args, **secrets(window))


@operation()
@clean
def reports_fetched(window: Window, local_dir: str) -> Commands:
    """
    Bring the window's dbsplit reports (migrate, verify) back to the operator's machine.

    + window: the host's settings
    + local_dir: where to keep them

    Updates: only the reports whose local copy differs from the VPS's.
    """
    found = fact(window, remote.reports, remote.ReportsQuery())
    todo = [
        name
        for name, sha in sorted(found.files.items())
        if not (Path(local_dir) / name).exists()
        or hashlib.sha1((Path(local_dir) / name).read_bytes()).hexdigest() != sha  # noqa: S324
    ]
    if not todo:
        host.noop(f"{len(found.files)} report(s) already in {local_dir}")
        return
    Path(local_dir).mkdir(parents=True, exist_ok=True)
    for name in todo:
        yield FileDownloadCommand(f"{found.folder}/{name}", str(Path(local_dir) / name))
