"""The first operation of every runbook that changes anything: no other runbook holds the VPS.

Every remote action that changes something takes the window's lock (``deploy/remote/journal``);
this check makes a second window, rollback, restore or reset stop before its first change, with
one line naming the run that holds it. Once the window is finalized it closes the ways back the
same way.
"""

from __future__ import annotations

from pyinfra.api.operation import operation
from pyinfra.context import host

from deploy.steps import Commands, clean, fact, fail
from deploy.steps import lock_remote as remote
from deploy.steps.finalize_remote import closed
from deploy.window import Window


@operation()
@clean
def no_other_runbook(window: Window, closed_after_finalize: str = "") -> Commands:
    """
    Fail when another runbook's run holds the window on the VPS (its SSH session still lives),
    and, for a way back or a new window, once the window is finalized.

    + window: the host's settings
    + closed_after_finalize: the runbook (``rollback``, ``restore``...) that a finalized window
      refuses, with one line saying when, where the archive and the last dump are, and how to
      go back to them by hand

    Updates: nothing, ever.
    """
    state = fact(window, remote.held, remote.LockQuery())
    if closed_after_finalize and state.finalized:
        yield fail(closed(closed_after_finalize, state.finalized))
        return
    other = state.other
    if other:
        yield fail(
            f"another {other.get('runbook')} is running on this VPS (run {other.get('run')},"
            f" since {other.get('since')}, ssh session pid {other.get('pid')}): nothing was"
            " changed; wait for it, or end that session if its operator is gone"
        )
        return
    host.noop(f"no other runbook holds the VPS (window {state.window or 'none open'})")
