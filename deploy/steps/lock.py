"""The first operation of every runbook that changes anything: no other runbook holds the VPS.

Every remote action that changes something takes the window's lock (``deploy/remote/journal``);
this check makes a second window, rollback, restore or reset stop before its first change, with
one line naming the run that holds it.
"""

from __future__ import annotations

from pyinfra.api.operation import operation
from pyinfra.context import host

from deploy.steps import Commands, clean, fact, fail
from deploy.steps import lock_remote as remote
from deploy.window import Window


@operation()
@clean
def no_other_runbook(window: Window) -> Commands:
    """
    Fail when another runbook's run holds the window on the VPS (its SSH session still lives).

    + window: the host's settings

    Updates: nothing, ever.
    """
    state = fact(window, remote.held, remote.LockQuery())
    other = state.other
    if other:
        yield fail(
            f"another {other.get('runbook')} is running on this VPS (run {other.get('run')},"
            f" since {other.get('since')}, ssh session pid {other.get('pid')}): nothing was"
            " changed; wait for it, or end that session if its operator is gone"
        )
        return
    host.noop(f"no other runbook holds the VPS (window {state.window or 'none open'})")
