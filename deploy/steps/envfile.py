"""The CA certificate and the new ``.env``, and putting the old ``.env`` back (operations)."""

from __future__ import annotations

from typing import Any

from pyinfra.api.operation import operation
from pyinfra.context import host

from deploy.steps import Commands, clean, fact, run
from deploy.steps import envfile_remote as remote
from deploy.window import Window


def query(window: Window, *, ca: bool = True) -> remote.EnvQuery:
    """Where the ``.env`` and the CA file are (the rollback does not need the CA's path, so it
    does not read the stack outputs for it)."""
    return remote.EnvQuery(window.settings.env_file, window.stack.ca_path if ca else "")


def split_values(window: Window) -> dict[str, Any]:
    return {"env_values": window.app_env_values(), "ca_pem": window.ca_pem()}


@operation()
@clean
def env_split(window: Window) -> Commands:
    """
    Write the CA certificate and the split ``.env``: atomically, mode 0600 from the first byte,
    the previous file kept once as ``.env.pre-split``, every other line of it kept.

    + window: the host's settings, the stack's ``caCertPath`` and the secrets
    """
    found = fact(window, remote.state, query(window), **split_values(window))
    if found.same and found.ca_same and found.mode == "0o600" and found.owner_ok:
        host.noop(".env and CA certificate already as the split needs them (mode 0600)")
        return
    yield run(window, remote.write, query(window), **split_values(window))


@operation()
@clean
def env_rolled_back(window: Window) -> Commands:
    """
    Put ``.env.pre-split`` back as ``.env`` (atomically, mode 0600); nothing to do when the
    window never wrote a new ``.env``.

    + window: the host's settings
    """
    found = fact(window, remote.state, query(window, ca=False))
    if not found.pre_split:
        host.noop(".env was never changed by a window: nothing to put back")
        return
    if found.pre_split_same:
        host.noop(".env is the pre-split one")
        return
    yield run(window, remote.restore, query(window, ca=False))
