"""Step 6: verify, then the cut-over gate (the operations)."""

from __future__ import annotations

from pyinfra.api.operation import operation
from pyinfra.context import host

from deploy.steps import Commands, clean, fact, fail, run
from deploy.steps import verify_remote as remote
from deploy.steps.split import secrets
from deploy.steps.split_remote import DbsplitQuery
from deploy.window import Window


def gate(window: Window) -> remote.Gate:
    """The cut-over gate, judged on the VPS from the databases and this run's verify."""
    return fact(window, remote.gate, DbsplitQuery(window.settings.venv), **secrets(window))


@operation()
@clean
def verified(window: Window) -> Commands:
    """
    ``dbsplit verify`` on the VPS, unless this run already verified and nothing moved since
    (or the window already cut over). A verify of an earlier run is never trusted: a re-run
    verifies again. Differences stop the window with their list.

    + window: the host's settings and secrets
    """
    found = gate(window)
    if found.cut_over:
        host.noop("the window has cut over: the targets are the app's now")
        return
    if found.passed:
        host.noop(f"verify passed at {found.verified_at} and nothing moved since")
        return
    yield run(
        window,
        remote.verify,
        remote.VerifyRun(window.settings.venv, max(2, window.settings.dbsplit_jobs)),
        **secrets(window),
    )


@operation()
@clean
def cutover_gate(window: Window) -> Commands:
    """
    Refuse the cut-over unless the source is frozen safely, both targets hold a finished copy
    of the source as it is now, and this run's verify passed with nothing moved since.

    + window: the host's settings and secrets

    Updates: nothing, ever.
    """
    found = gate(window)
    if found.cut_over:
        host.noop("the window has cut over already")
        return
    if not found.passed:
        yield fail("cut-over refused, nothing was switched: " + "; ".join(found.reasons))
        return
    host.noop(
        f"cut-over gate passed: source frozen and unchanged since the copy, verify of this run"
        f" passed at {found.verified_at}, nothing moved since"
    )
