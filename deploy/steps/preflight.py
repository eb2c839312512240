"""Step 1: the preflight, changing nothing (the operation)."""

from __future__ import annotations

from pyinfra.api.operation import operation
from pyinfra.context import host

from deploy.steps import Commands, clean, fact, fail
from deploy.steps import preflight_remote as remote
from deploy.window import Window


@operation()
@clean
def preflight(window: Window) -> Commands:
    """
    Check, changing nothing, that the window can run: the source as its superuser, disk for
    the dump, the DATA copy and its WAL, ``pg_dump`` new enough, PRIMARY direct and pooled with
    TLS ``verify-full`` against the cluster's CA, the DATA server, and no split left over from
    before a rollback.

    + window: the host's settings and secrets

    **Example:**

    .. code:: python

        preflight(name="Preflight", window=window)
    """
    s = window.settings
    found = fact(
        window,
        remote.probe,
        remote.Probe(s.backup_dir, list(s.primary_schemas), s.disk_margin_mb << 20),
        source_admin=window.source_admin(),
        primary_direct=window.primary_direct(),
        primary_pool=window.primary_pool(),
        data_admin=window.data_admin(),
        data=window.data(),
        ca_pem=window.ca_pem(),
    )
    failed = [c for c in found.checks if not c["ok"]]
    if failed or not found.checks:
        reasons = "; ".join(f"{c['name']}: {c['detail']}" for c in failed) or "no result"
        yield fail(f"preflight failed, nothing was changed: {reasons}")
        return
    if found.stale_split:
        yield fail(
            "preflight failed, nothing was changed: PRIMARY and DATA hold a split from before a"
            " rollback; the old database has changed since. Reset them (docs/deploy.md,"
            " 'Re-running after a rollback') before running the window again"
        )
        return
    host.noop("preflight passed: " + "; ".join(c["detail"] for c in found.checks))
