"""The checklist's Phase 2, PRIMARY initialisation, from the VPS (before the window).

    pyinfra -y inventory/production.py deploy/primary_init.py

Connects to the cluster from the VPS (TLS ``verify-full``, ``SELECT version()``), runs the
app's ``pnpm db:migrate:primary`` through ``PRIMARY_DIRECT_URL`` (never the pool), checks that
schemas ``config`` and ``customer`` hold their tables, and opens more concurrent sessions
through PgBouncer than the pool has servers. The window's ``dbsplit migrate`` then copies
rows only into these app-created tables. Safe to re-run: it changes nothing the second time.
"""

from pyinfra.context import host

from deploy.steps.lock import no_other_runbook
from deploy.steps.primary import (
    primary_migrated,
    primary_pool_tested,
    primary_reachable,
    primary_schemas_present,
)
from deploy.window import Window

window = Window.of(host, runbook="primary init")

no_other_runbook(name="Phase 2: no other runbook holds the VPS", window=window)
primary_reachable(name="Phase 2: connect to PRIMARY from the VPS", window=window)
primary_migrated(name="Phase 2: pnpm db:migrate:primary (direct URL)", window=window)
primary_schemas_present(name="Phase 2: schemas config and customer with tables", window=window)
primary_pool_tested(
    name="Phase 2: concurrent sessions through the pool",
    window=window,
    clients=int(host.data.get("pool_test_clients", 8)),
)
