"""Reset a stale split after a rollback, so the window can run again.

    pyinfra -y --data confirm_reset=yes inventory/production.py deploy/reset_split.py

After a rollback the old database takes writes PRIMARY and DATA lack, and the window refuses
to run. This dumps the split (PRIMARY's schemas ``config``, ``customer``, ``_dbsplit`` and the
app's migration history, and the ``handled_data`` database) to the VPS and to Spaces, each
checked, then drops it and closes the window in the journal (the next window takes a fresh
backup). It refuses without ``confirm_reset=yes`` (``--data`` or ``HANDLED_CONFIRM_RESET=yes``)
and while the app runs in split mode. Run ``deploy/primary_init.py`` again afterwards.
"""

import os

from pyinfra.context import host

from deploy.steps.lock import no_other_runbook
from deploy.steps.reset import split_reset
from deploy.window import Window

confirmed = "yes" in (
    str(host.data.get("confirm_reset", "")).lower(),
    os.environ.get("HANDLED_CONFIRM_RESET", "").lower(),
)
window = Window.of(host, runbook="reset")
no_other_runbook(
    name="Reset: no other runbook holds the VPS", window=window, closed_after_finalize="reset"
)
split_reset(
    name="Reset the stale split (dumped first: PRIMARY schemas, DATA database)",
    window=window,
    confirmed=confirmed,
)
