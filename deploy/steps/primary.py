"""Phase 2, PRIMARY's initialisation from the VPS (before the window): the operations."""

from __future__ import annotations

from pyinfra.api.operation import operation
from pyinfra.context import host

from deploy.remote.runtime import CA_PLACEHOLDER
from deploy.steps import Commands, clean, fact, fail, run
from deploy.steps import primary_remote as remote
from deploy.window import Window


def _state(window: Window) -> remote.PrimaryState:
    s = window.settings
    return fact(
        window,
        remote.state,
        remote.PrimaryQuery(s.app_dir, list(s.primary_schemas)),
        primary_direct=window.primary_direct(),
        ca_pem=window.ca_pem(),
    )


@operation()
@clean
def primary_reachable(window: Window) -> Commands:
    """
    Connect to PRIMARY from the VPS, directly with TLS ``verify-full``: ``SELECT version()``.

    + window: the host's settings and secrets

    Updates: nothing, ever.
    """
    found = _state(window)
    if not found.reachable:
        yield fail(f"PRIMARY is not reachable from the VPS: {found.error}")
        return
    if not found.tls:
        yield fail("PRIMARY answered without TLS")
        return
    host.noop(f"PRIMARY reachable from the VPS with TLS: PostgreSQL {found.version}")


@operation()
@clean
def primary_migrated(window: Window) -> Commands:
    """
    ``pnpm db:migrate:primary`` through ``PRIMARY_DIRECT_URL`` (never the pool).

    + window: the host's settings and secrets

    Updates: only when a migration of the app's ``prisma/primary`` is not applied on PRIMARY.
    """
    found = _state(window)
    pending = sorted(set(found.local) - set(found.applied))
    if found.local and not pending:
        host.noop(f"PRIMARY has all {len(found.local)} of the app's migrations")
        return
    yield run(
        window,
        remote.migrate,
        remote.Migrate(window.settings.app_dir),
        primary_direct_url=window.primary_direct_url(CA_PLACEHOLDER),
        ca_pem=window.ca_pem(),
    )


@operation()
@clean
def primary_schemas_present(window: Window) -> Commands:
    """
    Check that PRIMARY has the app's schemas (``config``, ``customer``) and tables in each.

    + window: the host's settings and secrets

    Updates: nothing, ever.
    """
    tables = _state(window).tables
    missing = [s for s in window.settings.primary_schemas if not tables.get(s)]
    if missing:
        yield fail(f"PRIMARY lacks tables in schema(s) {', '.join(missing)}")
        return
    host.noop("PRIMARY schemas: " + ", ".join(f"{k} ({v} tables)" for k, v in tables.items()))
