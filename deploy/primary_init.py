"""The checklist's Phase 2, PRIMARY initialisation, from the VPS (before the window).

    pyinfra -y inventory/production.py deploy/primary_init.py

Connects to the cluster from the VPS (TLS ``verify-full``, ``SELECT version()``), runs the
app's ``pnpm db:migrate:primary`` through ``PRIMARY_DIRECT_URL`` (never the pool), checks that
schemas ``config`` and ``customer`` hold their tables, and sends a burst of prepared-statement
queries through PgBouncer from more clients than the pool has servers, as the app's Prisma
client would under the stack's ``prismaPgbouncer`` (``deploy/steps/pool.py``; it fails naming
the setting to change when the pool cannot carry them). The window's ``dbsplit migrate`` then
copies rows only into these app-created tables. Safe to re-run: it changes nothing the second
time (the dbsplit virtualenv the burst runs in is installed once).
"""

from pyinfra.context import host

from deploy.steps.lock import no_other_runbook
from deploy.steps.pool import primary_pool_burst
from deploy.steps.primary import primary_migrated, primary_reachable, primary_schemas_present
from deploy.steps.tooling import dbsplit_installed
from deploy.window import Window

window = Window.of(host, runbook="primary init")

no_other_runbook(name="Phase 2: no other runbook holds the VPS", window=window)
primary_reachable(name="Phase 2: connect to PRIMARY from the VPS", window=window)
primary_migrated(name="Phase 2: pnpm db:migrate:primary (direct URL)", window=window)
primary_schemas_present(name="Phase 2: schemas config and customer with tables", window=window)
dbsplit_installed(name="Phase 2: dbsplit and psycopg in a virtualenv on the VPS", window=window)
primary_pool_burst(
    name="Phase 2: prepared-statement burst through the pool",
    window=window,
    clients=host.data.get("pool_burst_clients"),
)
