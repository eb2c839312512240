"""Step 4 (run by the preflight too, since ``dbsplit plan`` needs it): ``handled_data``."""

from __future__ import annotations

from typing import Any

from pyinfra.api.operation import operation
from pyinfra.context import host

from dbsplit.errors import UsageError
from dbsplit.urls import parse
from deploy.steps import Commands, clean, fact, fail, run
from deploy.steps import datadb_remote as remote
from deploy.window import Window


@operation()
@clean
def data_database(window: Window) -> Commands:
    """
    Create the DATA role (SCRAM verifier: the password never reaches the server) and the
    ``handled_data`` database owned by it, when missing.

    + window: the host's settings (``data_db``, ``data_role``) and secrets

    **Example:**

    .. code:: python

        data_database(name="4. Create the DATA database and role if missing", window=window)
    """
    s = window.settings
    try:
        url = parse(window.secrets.require("DATA_DATABASE_URL"), what="DATA_DATABASE_URL")
    except UsageError as exc:
        yield fail(str(exc))
        return
    if url.user != s.data_role or url.dbname != s.data_db:
        yield fail(
            f"DATA_DATABASE_URL names {url.user}@{url.dbname}, "
            f"the settings say {s.data_role}@{s.data_db}"
        )
        return
    args = remote.DataDb(role=s.data_role, database=s.data_db)
    secrets: dict[str, Any] = {
        "data_admin": window.data_admin(),
        "data_password": url.password or "",
    }
    found = fact(window, remote.state, args, **secrets)
    if found.database and found.login and found.owner == s.data_role:
        host.noop(f"database {s.data_db} and role {s.data_role} exist")
        return
    yield run(window, remote.create, args, **secrets)
