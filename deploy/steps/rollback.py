"""The rollback: the app back on the old database from any point of the window (operations).

In order: stop whatever runs; account for the rows the app wrote in split mode (refuse, naming
them, unless they may be discarded, and then only once they are dumped to the VPS and to
Spaces); put the old ``.env`` back; unfreeze the source (only now is it safe: nothing the split
holds will be lost without a trace); record that the split is stale; restart the app on the old
database and wait for its health.
"""

from __future__ import annotations

from typing import Any

from pyinfra.api.deploy import deploy
from pyinfra.api.operation import operation
from pyinfra.context import host

from deploy.steps import Commands, clean, fact, fail, run, venv_python
from deploy.steps import rollback_remote as remote
from deploy.steps.app import app_healthy, app_restarted, app_state
from deploy.steps.envfile import env_rolled_back
from deploy.steps.freeze import app_facts, source_unfrozen, stop_apps
from deploy.window import Window

EXCLUDED = ["public._prisma_migrations"]
"""Each database's own migration history: never copied, never a split-mode write."""


def _query(window: Window, *, bucket: bool) -> remote.SplitWritesQuery:
    s = window.settings
    where = window.bucket() if bucket else {}
    return remote.SplitWritesQuery(EXCLUDED, s.backup_dir, s.backup_key_prefix, where)


def _targets(window: Window) -> dict[str, Any]:
    return {
        "primary_direct": window.primary_direct(),
        "data": window.data(),
        "ca_pem": window.ca_pem(),
    }


@operation()
@clean
def split_writes_accounted(window: Window, discard: bool, first_look: bool = False) -> Commands:
    """
    Count, per table of PRIMARY and DATA, the rows the app wrote since the cut-over; refuse to
    go on while there are any, unless ``discard``, and then dump them first (to the VPS and to
    Spaces, checked).

    + window: the host's settings and secrets
    + discard: the operator passed ``discard_split_writes=yes``
    + first_look: the count before anything changes (the app still runs): it only refuses,
      so a refused rollback leaves the app as it was; the count after the app stopped is the
      one that dumps
    """
    found = fact(window, remote.count, _query(window, bucket=False), **_targets(window))
    if not found.cut_over:
        host.noop("the app never ran on the split: no row was written there")
        return
    if found.rolled_back:
        where = found.dumped.get("folder")
        host.noop(
            "this window was rolled back already"
            + (f"; its split writes: {where}" if where else "")
        )
        return
    unreachable = "; ".join(f"{t}: {why}" for t, why in found.unreachable.items())
    if unreachable and not discard:
        yield fail(
            f"rollback refused: cannot count the rows the app wrote in split mode ({unreachable});"
            " to roll back without them pass --data discard_split_writes=yes (they stay where"
            " they are until deploy/reset_split.py dumps them)"
        )
        return
    if not found.any:
        host.noop(f"no row was written in split mode ({found.counted} tables counted)")
        return
    if not discard:
        yield fail(
            "rollback refused: the app wrote in split mode, and the old database lacks these"
            f" rows: {remote.describe(found)}. To roll back anyway pass --data"
            " discard_split_writes=yes: they are dumped to the VPS and to Spaces first"
        )
        return
    if first_look:
        host.noop(f"the app wrote in split mode ({remote.describe(found)}): dumped once it stops")
        return
    if found.dumped.get("tables") == found.tables:
        host.noop(f"the rows written in split mode are dumped in {found.dumped.get('folder')}")
        return
    yield run(
        window,
        remote.dump,
        _query(window, bucket=True),
        python=venv_python(window),
        **_targets(window),
        **window.s3_secrets(),
    )


@operation()
@clean
def app_stopped_for_rollback(window: Window) -> Commands:
    """
    ``pm2 stop`` every app that still runs, unless the app already runs healthy on the old
    database (its ``.env`` is not the split one): a rollback then has nothing to stop.

    + window: the host's settings
    """
    found = app_facts(window)
    if not found.running:
        host.noop("no app is running")
        return
    if not found.env_split:
        single = app_state(window, "single")
        if single.healthy:
            host.noop(f"the app runs healthy on the old database: {single.health}")
            return
    yield from stop_apps(window)


@operation()
@clean
def rollback_recorded(window: Window) -> Commands:
    """
    Record in the journal that the app went back to the old database: PRIMARY and DATA are
    stale from now on, and the window refuses to run until they are reset.

    + window: the host's settings
    """
    found = fact(window, remote.mark_state, remote.RollbackMark())
    if not found.window:
        host.noop("no window is open: nothing goes stale")
        return
    if found.rolled_back:
        host.noop("rollback already recorded")
        return
    yield run(window, remote.mark, remote.RollbackMark())


def discard_requested() -> bool:
    """``--data discard_split_writes=yes`` (or ``HANDLED_DISCARD_SPLIT_WRITES=yes``)."""
    import os

    return "yes" in (
        str(host.data.get("discard_split_writes", "")).lower(),
        os.environ.get("HANDLED_DISCARD_SPLIT_WRITES", "").lower(),
    )


@deploy("Rollback")
def rollback(window: Window, prefix: str = "Rollback") -> None:
    """Account for the split's writes (refusing before any change), stop the apps, account
    again (dumping them when discarded), put ``.env.pre-split`` back, unfreeze, record that the
    split is stale, restart, wait for health in single-database mode and run the smoke checks
    there."""
    split_writes_accounted(
        name=f"{prefix}: rows the app wrote in split mode (first look, nothing changed yet)",
        window=window,
        discard=discard_requested(),
        first_look=True,
    )
    app_stopped_for_rollback(name=f"{prefix}: stop the app (pm2 stop)", window=window)
    split_writes_accounted(
        name=f"{prefix}: rows the app wrote in split mode",
        window=window,
        discard=discard_requested(),
    )
    env_rolled_back(name=f"{prefix}: put .env.pre-split back", window=window)
    source_unfrozen(name=f"{prefix}: unfreeze the source", window=window)
    rollback_recorded(name=f"{prefix}: record that the split is stale", window=window)
    app_restarted(name=f"{prefix}: pm2 restart --update-env", window=window, mode="single")
    app_healthy(
        name=f"{prefix}: healthy on the old database, then the smoke checks",
        window=window,
        mode="single",
        timeout=window.settings.rollback_health_timeout,
        phase="rollback",
    )
