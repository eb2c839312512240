"""Full restore of the old database from the window's backup (the checklist's full restore).

    pyinfra -y --data confirm_restore=yes inventory/production.py deploy/restore.py
        [--data backup_name=<file>] [--data backup_sha256=<hex>]
        [--data restore_over_newer_writes=yes] [--data discard_split_writes=yes]

Refuses without ``confirm_restore=yes`` (or ``HANDLED_CONFIRM_RESTORE=yes``). The app is
stopped; the rows the app wrote in split mode are accounted for as the rollback does; the
backup is the VPS's copy when its SHA-256 matches, else it is downloaded from Spaces and
checked. It is restored into a new database, checked table by table against the checksums
taken with it and only then swapped in for the source (kept as ``<source>_before_restore_*``);
a restore over writes newer than the backup is refused unless ``restore_over_newer_writes``.
``handled_data`` is dumped, then dropped. Then the rollback's last steps: the old ``.env``, the
stale split recorded, the app restarted on the restored database and its health checked.
"""

import os

from pyinfra.context import host

from deploy.steps.app import app_healthy, app_restarted
from deploy.steps.envfile import env_rolled_back
from deploy.steps.freeze import app_stopped
from deploy.steps.lock import no_other_runbook
from deploy.steps.restore import (
    backup_fetched,
    restore_allowed,
    restore_confirmed,
    source_restored,
)
from deploy.steps.rollback import discard_requested, rollback_recorded, split_writes_accounted
from deploy.window import Window


def said_yes(key: str, variable: str) -> bool:
    return "yes" in (str(host.data.get(key, "")).lower(), os.environ.get(variable, "").lower())


window = Window.of(host, runbook="restore")
no_other_runbook(
    name="Restore: no other runbook holds the VPS", window=window, closed_after_finalize="restore"
)
restore_confirmed(
    name="Restore: confirmed by the operator",
    confirmed=said_yes("confirm_restore", "HANDLED_CONFIRM_RESTORE"),
)
over_newer_writes = said_yes("restore_over_newer_writes", "HANDLED_RESTORE_OVER_NEWER_WRITES")
split_writes_accounted(
    name="Restore: rows the app wrote in split mode (first look, nothing changed yet)",
    window=window,
    discard=discard_requested(),
    first_look=True,
)
backup_fetched(
    name="Restore: the backup on the VPS, checksum checked",
    window=window,
    sha256=str(host.data.get("backup_sha256") or ""),
)
restore_allowed(
    name="Restore: no write newer than the backup would be lost",
    window=window,
    over_newer_writes=over_newer_writes,
)
app_stopped(name="Restore: stop the app (pm2 stop)", window=window)
split_writes_accounted(
    name="Restore: rows the app wrote in split mode", window=window, discard=discard_requested()
)
source_restored(
    name="Restore: into a new database, checked against the backup's checksums, swapped in",
    window=window,
    over_newer_writes=over_newer_writes,
)
env_rolled_back(name="Restore: put .env.pre-split back", window=window)
rollback_recorded(name="Restore: record that the split is stale", window=window)
app_restarted(name="Restore: pm2 restart --update-env", window=window, mode="single")
app_healthy(
    name="Restore: healthy on the restored database",
    window=window,
    mode="single",
    timeout=window.settings.rollback_health_timeout,
)
