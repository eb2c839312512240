"""Reset a stale split after a rollback, so the window can run again.

    pyinfra -y --data confirm_reset=yes inventory/production.py deploy/reset_split.py

After a rollback the old database takes writes PRIMARY and DATA lack, and the window refuses
to run. This drops the split on PRIMARY (schemas ``config``, ``customer``, ``_dbsplit`` and the
app's migration history) and the ``handled_data`` database, clears the rollback and build
markers on the VPS and sets the old backup aside (the next window takes a fresh one). It
refuses without ``confirm_reset=yes`` (``--data`` or ``HANDLED_CONFIRM_RESET=yes``) and while
the app runs in split mode. Run ``deploy/primary_init.py`` again afterwards.
"""

import os

from pyinfra.context import host

from deploy import ops
from deploy.window import Window

confirmed = "yes" in (
    str(host.data.get("confirm_reset", "")).lower(),
    os.environ.get("HANDLED_CONFIRM_RESET", "").lower(),
)
ops.split_reset(
    name="Reset the stale split (PRIMARY schemas, DATA database, markers)",
    window=Window.of(host),
    confirmed=confirmed,
)
