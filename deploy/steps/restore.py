"""The full restore from the window's backup (operations)."""

from __future__ import annotations

from pyinfra.api.operation import operation
from pyinfra.context import host

from deploy.steps import Commands, clean, fact, fail, live, venv_python
from deploy.steps import restore_remote as remote
from deploy.window import Window


def query(
    window: Window, *, sha256: str = "", over_newer_writes: bool = False
) -> remote.RestoreQuery:
    s = window.settings
    return remote.RestoreQuery(
        backup_dir=s.backup_dir,
        prefix=s.backup_prefix,
        venv=s.venv,
        source_db=s.source_db,
        data_db=s.data_db,
        key_prefix=s.backup_key_prefix,
        bucket=window.bucket(),
        backup_name=str(host.data.get("backup_name") or ""),
        sha256=sha256,
        over_newer_writes=over_newer_writes,
    )


@operation()
@clean
def restore_confirmed(confirmed: bool) -> Commands:
    """
    Refuse the restore unless the operator confirmed it (``--data confirm_restore=yes``).

    + confirmed: whether they did

    Updates: nothing, ever.
    """
    if not confirmed:
        yield fail(
            "restore refused, nothing was changed: it replaces the source database with the"
            " window's backup and drops the DATA database (after dumping it); pass --data"
            " confirm_restore=yes (or HANDLED_CONFIRM_RESTORE=yes)"
        )
        return
    host.noop("restore confirmed by the operator")


@operation()
@clean
def backup_fetched(window: Window, sha256: str = "") -> Commands:
    """
    Make sure the backup and its manifest are on the VPS with the right checksum: the local
    copy, else a download from the bucket (checked against ``sha256`` or the recorded one).

    + window: the host's settings and the Spaces key pair
    + sha256: the expected checksum, when known
    """
    found = fact(
        window,
        remote.state,
        query(window, sha256=sha256),
        source_url=window.secrets.require("SOURCE_ADMIN_URL"),
    )
    if found.local:
        host.noop(f"backup {found.name} on the VPS, sha256 {found.sha256}")
        return
    yield live(
        window,
        remote.fetch,
        query(window, sha256=sha256),
        python=venv_python(window),
        **window.s3_secrets(),
    )


@operation()
@clean
def restore_allowed(window: Window, over_newer_writes: bool) -> Commands:
    """
    Refuse, before anything changes, a restore over writes newer than the backup (the
    source's write position moved since the backup was taken), unless ``over_newer_writes``.

    + window: the host's settings and secrets
    + over_newer_writes: the operator passed ``restore_over_newer_writes=yes``

    Updates: nothing, ever.
    """
    found = fact(
        window, remote.state, query(window), source_url=window.secrets.require("SOURCE_ADMIN_URL")
    )
    if not found.local:
        yield fail(f"no checked backup {found.name} on the VPS")
        return
    if found.newer_writes and not over_newer_writes:
        yield fail(
            f"restore refused, nothing was changed: the source has writes newer than the backup"
            f" {found.name} (its write position moved since the backup); restoring would lose"
            " them: pass --data restore_over_newer_writes=yes to restore anyway"
        )
        return
    note = " (over newer writes, as asked)" if found.newer_writes else ""
    host.noop(f"restoring {found.name} (sha256 {found.sha256}){note}")


@operation(is_idempotent=False)
@clean
def source_restored(window: Window, over_newer_writes: bool) -> Commands:
    """
    Restore the backup into a new database, check every table against the backup's
    checksums, swap it in for the source (the old one kept aside), then dump and drop the
    DATA database.

    + window: the host's settings and secrets
    + over_newer_writes: restore even though the source has writes newer than the backup
    """
    yield live(
        window,
        remote.restore,
        query(window, over_newer_writes=over_newer_writes),
        source_admin=window.source_admin(),
        source_url=window.secrets.require("SOURCE_ADMIN_URL"),
        data_admin=window.data_admin(),
    )
