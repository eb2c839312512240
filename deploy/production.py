"""The maintenance window: the checklist's Phase 4, from the VPS, with its automatic rollback.

    pyinfra -y inventory/production.py deploy/production.py

Each step reads the databases and the VPS first and does nothing when its work is there, so a
re-run after success changes nothing and a re-run after a failure continues where it stopped.
What the cut-over needs is re-established on every run, never taken from a marker: the source
frozen safely and unchanged since the copy's snapshot, and a verify of this run with nothing
moved since. Every step's outcome and facts go to the VPS's journal. Any failure stops the
run; a failed health gate rolls back first.
"""

from pyinfra.context import host

from deploy.notify import announce, window_announced
from deploy.steps.app import app_built, app_healthy, app_restarted, deploy_failed
from deploy.steps.backup import backup_taken, backup_uploaded
from deploy.steps.datadb import data_database
from deploy.steps.envfile import env_split
from deploy.steps.freeze import app_stopped_for_window, source_frozen
from deploy.steps.lock import no_other_runbook
from deploy.steps.preflight import preflight
from deploy.steps.rollback import rollback
from deploy.steps.split import reports_fetched, split_migrated, split_plan_clear
from deploy.steps.tooling import dbsplit_installed
from deploy.steps.verify import cutover_gate, verified
from deploy.window import Window

window = Window.of(host, runbook="window")
s = window.settings
announce(window)  # the communication plan: started, each step, rollback, the end

# 1. Preflight: nothing changes until every read-only check passes.
no_other_runbook(
    name="1. Preflight: no other runbook holds the VPS",
    window=window,
    closed_after_finalize="window",
)
preflight(name="1. Preflight: source, disk, pg_dump, PRIMARY (verify-full), DATA", window=window)
dbsplit_installed(name="1. Preflight: dbsplit installed in a virtualenv", window=window)
data_database(name="1. Preflight: the DATA database and role (the plan needs them)", window=window)
split_plan_clear(name="1. Preflight: dbsplit plan has no blockers", window=window)

# 2-3. Stop the app, freeze the source (no role may connect; checked).
app_stopped_for_window(name="2. Stop the app (pm2 stop)", window=window)
source_frozen(name="3. Freeze the source (dbsplit freeze)", window=window)

# 4. Backup of the frozen source, named for the window, on the VPS and in Spaces.
backup_taken(name="4. Backup: pg_dump -Fc of the frozen source, checksums", window=window)
backup_uploaded(name="4. Backup: upload to Spaces, checksum checked", window=window)

# 5-6. The copy, then verify; the reports come back to the operator.
split_migrated(name="5. dbsplit migrate on the VPS", window=window)
verified(name="6. dbsplit verify", window=window)
reports_fetched(
    name="6. Fetch the dbsplit reports", window=window, local_dir=f"{s.report_dir}/{host.name}"
)

# 7-10. The cut-over: through the gate, the new .env, the build, the restart.
cutover_gate(name="7. Cut-over gate: frozen, unchanged since the copy, verified", window=window)
env_split(name="8. Write the CA certificate and the split .env", window=window)
app_built(
    name="9. pnpm install, db:generate, db:migrate:primary, db:migrate:data, build", window=window
)
app_restarted(
    name="10. Cut over: pm2 restart --update-env on the split", window=window, mode="split"
)

# 11. The health gate, with the automatic rollback behind it.
gate = app_healthy(
    name="11. Health gate: PRIMARY and DATA connected, then the smoke checks",
    window=window,
    mode="split",
    timeout=s.health_timeout,
    phase="cutover",
    _ignore_errors=True,
)
rollback(window=window, prefix="11. Rollback", _if=gate.did_error)
deploy_failed(
    name="11. Deploy failed: health gate",
    gate=gate,
    message="health gate failed; rolled back: the app runs on the old database again",
    _if=gate.did_error,
)

# 12. The communication plan: the success, with the numbers this run measured.
window_announced(name="12. Announce the success with its numbers", window=window)
