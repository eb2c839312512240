"""Step 3: stop the app and freeze the source (the operations).

Also used by the rollback (stop whatever runs, unfreeze when it is safe) and the restore.
"""

from __future__ import annotations

from pyinfra.api.operation import operation
from pyinfra.context import host

from deploy.steps import Commands, clean, fact, fail, run
from deploy.steps import freeze_remote as remote
from deploy.window import Window


def app_facts(window: Window) -> remote.AppFacts:
    s = window.settings
    return fact(window, remote.app_facts, remote.AppQuery(list(s.pm2_apps), s.env_file))


def source_facts(window: Window) -> remote.SourceFacts:
    return fact(
        window,
        remote.source_facts,
        remote.SourceQuery(window.settings.venv),
        source_url=window.secrets.require("SOURCE_ADMIN_URL"),
    )


def stop_apps(window: Window) -> Commands:
    s = window.settings
    yield run(window, remote.stop_apps, remote.AppQuery(list(s.pm2_apps), s.env_file))


@operation()
@clean
def app_stopped_for_window(window: Window) -> Commands:
    """
    ``pm2 stop`` every app that still runs (online, errored, restarting), unless the window
    already cut over to the split (a re-run after success).

    + window: the host's settings
    """
    found = app_facts(window)
    if found.cut_over and found.env_split:
        host.noop("the window has cut over: the app runs on the split, not stopping it")
        return
    if not found.running:
        host.noop("no app is running")
        return
    yield from stop_apps(window)


@operation()
@clean
def app_stopped(window: Window) -> Commands:
    """
    ``pm2 stop`` every app that still runs, whatever database it uses.

    + window: the host's settings
    """
    if not app_facts(window).running:
        host.noop("no app is running")
        return
    yield from stop_apps(window)


@operation()
@clean
def source_frozen(window: Window) -> Commands:
    """
    Freeze the source (``dbsplit freeze`` as its superuser) unless ``dbsplit freeze --check``
    finds it frozen safely: no role but superusers may connect, no other session, no pending
    prepared transaction, the read-only default set.

    + window: the host's settings and secrets
    """
    found = source_facts(window)
    if found.ok:
        digest = str((found.position or {}).get("digest", ""))[:12]
        host.noop(f"source {window.settings.source_db} frozen safely (write position {digest})")
        return
    yield run(
        window,
        remote.freeze,
        remote.SourceQuery(window.settings.venv),
        source_url=window.secrets.require("SOURCE_ADMIN_URL"),
    )


@operation()
@clean
def source_unfrozen(window: Window) -> Commands:
    """
    Make the source writable again (``dbsplit unfreeze``: CONNECT back to exactly the roles
    that had it, the read-only default reset). Use it only once nothing the split holds can be
    lost: the rollback runs it after the split's writes were accounted for.

    + window: the host's settings and secrets
    """
    found = source_facts(window)
    if not found.frozen:
        host.noop(f"source {window.settings.source_db} is writable")
        return
    if found.error:
        yield fail(f"the source is frozen and cannot be unfrozen: {found.error}")
        return
    yield run(
        window,
        remote.unfreeze,
        remote.SourceQuery(window.settings.venv),
        source_url=window.secrets.require("SOURCE_ADMIN_URL"),
    )
