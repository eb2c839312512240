"""The finalize after a successful window (operations). The ways back it closes refuse in
their first operation (:func:`deploy.steps.lock.no_other_runbook`)."""

from __future__ import annotations

from pyinfra.api.operation import operation
from pyinfra.context import host

from deploy.steps import Commands, clean, fact, fail, live, run, venv_python
from deploy.steps import finalize_remote as remote
from deploy.steps.watch import folder
from deploy.window import Window


def query(window: Window, without_watch: bool = False) -> remote.FinalizeQuery:
    s = window.settings
    return remote.FinalizeQuery(
        s.venv,
        s.source_db,
        s.env_file,
        s.backup_dir,
        s.health_url,
        s.backup_key_prefix,
        window.bucket(),
        dict(s.health_contract),
        folder(window),
        without_watch,
    )


def _state(window: Window, without_watch: bool = False) -> remote.FinalizeState:
    return fact(
        window,
        remote.state,
        query(window, without_watch),
        source_admin=window.source_admin(),
        source_url=window.secrets.require("SOURCE_ADMIN_URL"),
    )


@operation()
@clean
def finalize_allowed(window: Window, confirmed: bool, without_watch: bool = False) -> Commands:
    """
    Refuse, before anything changes: without the operator's word, before a window cut over
    (or after it was rolled back or restored), while the app is not healthy on the split,
    while the old database is not frozen safely or was written to after the cut-over, and
    until the 48-hour watch of this window is over with no failed check.

    + window: the host's settings and secrets
    + confirmed: the operator passed ``confirm_finalize=yes``
    + without_watch: the operator passed ``finalize_without_watch=yes`` (the watch not asked)

    Updates: nothing, ever.
    """
    found = _state(window, without_watch)
    if found.finalized:
        record = found.finalized
        host.noop(
            f"window {record.get('window')} was finalized at {record.get('at')}: the old"
            f" database is archived as {record.get('archive')}; nothing to do"
        )
        return
    if not confirmed:
        yield fail(
            "finalize refused, nothing was changed: it archives the old database and closes"
            " the way back to it for good; pass --data confirm_finalize=yes (or"
            " HANDLED_CONFIRM_FINALIZE=yes) once the watch has passed"
        )
        return
    if found.refusal:
        yield fail(f"finalize refused, nothing was changed: {found.refusal}")
        return
    host.noop(f"window {found.window} cut over and healthy: finalizing, archive {found.archive}")


@operation()
@clean
def final_dump_taken(window: Window) -> Commands:
    """
    The last ``pg_dump -Fc`` of the frozen old database (checksums, ``pg_restore --list``, at
    the cut-over's write position), uploaded to Spaces and read back through SHA-256.

    + window: the host's settings, secrets and the Spaces key pair
    """
    found = _state(window)
    if found.finalized:
        host.noop(f"finalized already; the last dump is {found.finalized.get('dump')}")
        return
    if found.uploaded:
        host.noop(
            f"{found.dump} taken at the cut-over's position, in Spaces (sha256 {found.sha256})"
        )
        return
    yield live(
        window,
        remote.dump,
        query(window),
        python=venv_python(window),
        source_admin=window.source_admin(),
        source_url=window.secrets.require("SOURCE_ADMIN_URL"),
        **window.s3_secrets(),
    )


@operation()
@clean
def old_database_archived(window: Window) -> Commands:
    """
    Rename the old database ``<source>_pre_split_<cut-over date>``, check it is still frozen
    at the same position, keep ``.env.pre-split`` and record the finalize in the journal.

    + window: the host's settings and secrets
    """
    found = _state(window)
    if found.finalized:
        host.noop(f"the old database is archived as {found.finalized.get('archive')}")
        return
    yield run(
        window,
        remote.archive,
        query(window),
        source_admin=window.source_admin(),
        source_url=window.secrets.require("SOURCE_ADMIN_URL"),
    )
