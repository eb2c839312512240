"""The backup step, after the freeze: the dump on the VPS and in Spaces (the operations)."""

from __future__ import annotations

from pyinfra.api.operation import operation
from pyinfra.context import host

from deploy.steps import Commands, clean, fact, live, venv_python
from deploy.steps import backup_remote as remote
from deploy.window import Window


def query(window: Window) -> remote.BackupQuery:
    s = window.settings
    return remote.BackupQuery(
        s.backup_dir, s.backup_prefix, s.venv, s.backup_key_prefix, window.bucket()
    )


def _state(window: Window) -> remote.BackupState:
    return fact(
        window,
        remote.state,
        query(window),
        source_url=window.secrets.require("SOURCE_ADMIN_URL"),
    )


@operation()
@clean
def backup_taken(window: Window) -> Commands:
    """
    ``pg_dump -Fc`` of the frozen source into the VPS's backup directory, named for the
    window, with its SHA-256, every table's checksum and a successful ``pg_restore --list``.

    + window: the host's settings and secrets

    Updates: only when this window has no dump yet, or the source moved since it was taken.
    """
    found = _state(window)
    if found.local and found.current:
        host.noop(f"backup {found.name} holds the frozen source (sha256 {found.sha256})")
        return
    yield live(
        window,
        remote.take,
        query(window),
        source_admin=window.source_admin(),
        source_url=window.secrets.require("SOURCE_ADMIN_URL"),
    )


@operation()
@clean
def backup_uploaded(window: Window) -> Commands:
    """
    Upload the dump and its manifest to the stack's Spaces bucket (multipart when large) and
    check each by streaming it back through SHA-256. Runs with the dbsplit virtualenv's Python.

    + window: the host's settings, stack values and the Spaces key pair
    """
    found = _state(window)
    if found.uploaded:
        host.noop(f"backup {found.name} already in the bucket with sha256 {found.sha256}")
        return
    yield live(
        window,
        remote.upload,
        query(window),
        python=venv_python(window),
        **window.s3_secrets(),
    )
