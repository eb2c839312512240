"""The reset after a rollback (operation)."""

from __future__ import annotations

from typing import Any

from pyinfra.api.operation import operation
from pyinfra.context import host

from deploy.steps import Commands, clean, fact, fail, run, venv_python
from deploy.steps import reset_remote as remote
from deploy.window import Window


def query(window: Window) -> remote.ResetQuery:
    s = window.settings
    return remote.ResetQuery(
        s.health_url,
        s.env_file,
        list(s.primary_schemas),
        s.data_db,
        s.backup_dir,
        s.backup_key_prefix,
        window.bucket(),
    )


@operation()
@clean
def split_reset(window: Window, confirmed: bool) -> Commands:
    """
    Dump the stale split (PRIMARY's schemas, the app's migration history, ``_dbsplit``, the
    ``handled_data`` database) to the VPS and to Spaces, then drop it and close the window.
    Refused while the app runs in split mode, and without ``confirmed``.

    + window: the host's settings and secrets
    + confirmed: the operator said ``confirm_reset=yes``
    """
    if not confirmed:
        yield fail(
            "reset refused: it drops PRIMARY's split schemas and the DATA database (after"
            " dumping them); pass --data confirm_reset=yes (or HANDLED_CONFIRM_RESET=yes)"
        )
        return
    conns: dict[str, Any] = {
        "primary_direct": window.primary_direct(),
        "data_admin": window.data_admin(),
        "ca_pem": window.ca_pem(),
    }
    found = fact(window, remote.state, query(window), **conns)
    if not (found.window or found.primary_schemas or found.primary_history or found.data_database):
        host.noop("no split on PRIMARY or DATA and no window open: nothing to reset")
        return
    yield run(
        window,
        remote.reset,
        query(window),
        python=venv_python(window),
        **conns,
        **window.s3_secrets(),
    )
