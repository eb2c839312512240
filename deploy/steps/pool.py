"""Phase 2's pool burst (the operation): prepared-statement queries through PRIMARY's pool, from
the VPS, as the app's Prisma client sends them under the stack's ``prismaPgbouncer``."""

from __future__ import annotations

from pyinfra.api.operation import operation
from pyinfra.context import host

from deploy.steps import Commands, clean, fact, fail, venv_python
from deploy.steps import pool_remote as remote
from deploy.window import Window

TRANSACTIONS = 5
"""Transactions each client runs: enough for each to land on several of the pool's servers."""

MODES = {
    True: "pgbouncer=true: DEALLOCATE ALL, then fresh named statements, in each transaction",
    False: "pgbouncer=false: named statements prepared once per client, reused in each transaction",
}
FIXES = {
    True: (
        "this pool breaks Prisma's pgbouncer=true mode (PgBouncer 1.21+ with"
        " max_prepared_statements > 0 loses its statements to Prisma's DEALLOCATE ALL:"
        " prisma/prisma#21635, #21877 on DigitalOcean's pool); set"
        " `pulumi config set handled-infra:prismaPgbouncer false`, `pulumi up`, then run this"
        " runbook again"
    ),
    False: (
        "this pool does not carry named prepared statements across transactions (PgBouncer"
        " before 1.21, or max_prepared_statements = 0); set"
        " `pulumi config set handled-infra:prismaPgbouncer true` (the checklist's value),"
        " `pulumi up`, then run this runbook again"
    ),
}


def summary(pgbouncer: bool, found: remote.BurstResult, pool_size: int) -> str:
    """One line: the mode, clients against the pool, queries, errors, latency."""
    return (
        f"{MODES[pgbouncer]}: {found.clients} clients through a pool of {pool_size},"
        f" {found.transactions} transactions, {found.queries} queries, {found.answered} answered,"
        f" {found.errors} errors, p50 {found.p50_ms:g} ms, p95 {found.p95_ms:g} ms,"
        f" {found.seconds:g} s"
    )


@operation()
@clean
def primary_pool_burst(window: Window, clients: int | None = None) -> Commands:
    """
    More concurrent clients than the pool has servers, each running several transactions of
    server-side prepared statements through the pool, as Prisma does under the stack's
    ``prismaPgbouncer`` (:mod:`deploy.steps.pool_remote`). Every query must answer; otherwise
    the operation fails naming what to change.

    + window: the host's settings, stack values and secrets
    + clients: how many clients at once (default: twice the pool's size)

    Updates: nothing, ever.

    **Example:**

    .. code:: python

        primary_pool_burst(name="Phase 2: pool burst", window=window)
    """
    stack = window.stack
    clients = clients or 2 * stack.pool_size
    if clients <= stack.pool_size:
        yield fail(f"pool burst: {clients} clients do not exceed the pool's {stack.pool_size}")
        return
    found = fact(
        window,
        remote.burst,
        remote.Burst(pgbouncer=stack.pgbouncer, clients=clients, transactions=TRANSACTIONS),
        python=venv_python(window),
        primary_pool=window.primary_pool(),
        ca_pem=window.ca_pem(),
    )
    line = summary(stack.pgbouncer, found, stack.pool_size)
    if found.errors or found.answered != found.queries:
        states = ", ".join(f"{k} x{v}" for k, v in sorted(found.sqlstates.items()))
        fix = FIXES[stack.pgbouncer] if set(found.sqlstates) & set(remote.STATEMENT_ERRORS) else ""
        why = f"; first: {found.first_error}" + (f"; {fix}" if fix else "")
        yield fail(f"pool burst failed ({states}): {line}{why}")
        return
    host.noop(f"pool burst passed: {line}")
