"""Full restore of the old database from the window's backup, then row counts checked.

    pyinfra -y inventory/production.py deploy/restore.py [--data backup_sha256=<hex>]

The backup is the VPS's copy when its SHA-256 matches, else it is downloaded from Spaces and
checked. The app is stopped, the source made writable and restored, its row counts compared
with the backup's, then the app restarted on it (the pre-split ``.env``) and health checked.
"""

from pyinfra.context import host

from deploy import ops
from deploy.tasks.rollback import rollback
from deploy.window import Window

window = Window.of(host)

ops.app_stopped(name="Restore: stop the app (pm2 stop)", window=window)
ops.backup_fetched(
    name="Restore: the backup on the VPS, checksum checked",
    window=window,
    sha256=host.data.get("backup_sha256"),
)
ops.source_frozen(name="Restore: unfreeze the source", window=window, frozen=False)
ops.source_restored(name="Restore: pg_restore, then row counts against the backup", window=window)
rollback(window=window, prefix="Restore")
