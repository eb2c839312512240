"""The checklist's quick rollback, automated, from any point of the window.

    pyinfra -y inventory/production.py deploy/rollback.py [--data discard_split_writes=yes]

Stops whatever runs, counts per table the rows the app wrote in split mode and refuses, naming
them, unless ``discard_split_writes=yes`` (then they are dumped to the VPS and to Spaces
first), puts the old ``.env`` back, unfreezes the source, records that the split is stale,
restarts the app on the old database and waits for its health. A no-op when the app already
runs healthy on the old database. Refused once the window is finalized (``deploy/finalize.py``).
"""

from pyinfra.context import host

from deploy.notify import announce
from deploy.steps.lock import no_other_runbook
from deploy.steps.rollback import rollback
from deploy.window import Window

window = Window.of(host, runbook="rollback")
announce(window)  # the communication plan: rollback started, each step, finished
no_other_runbook(
    name="Rollback: no other runbook holds the VPS", window=window, closed_after_finalize="rollback"
)
rollback(window=window)
