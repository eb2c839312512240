"""Archive the old database once the window has passed its watch, and close the way back.

    pyinfra -y --data confirm_finalize=yes inventory/production.py deploy/finalize.py

On the operator's word (``confirm_finalize=yes``, or ``HANDLED_CONFIRM_FINALIZE=yes``), after a
window that cut over, with the app healthy on the split and its 48-hour watch over with no
failed check (``deploy/watch.py``; ``finalize_without_watch=yes`` finalizes without it): a last
``pg_dump -Fc`` of the frozen old database, checked (checksums, ``pg_restore --list``, at the
write position the cut-over saw) and uploaded to Spaces, read back through SHA-256; the old
database renamed ``<source>_pre_split_<cut-over date>``, still frozen (checked again under its
new name); ``.env.pre-split`` kept; the finalize recorded in the journal. From then on the
rollback, the restore, the reset and the window refuse, each with one line saying when it was
finalized, where the archive and the dump are, and how to go back to them by hand.

Refused, with nothing changed: without the confirmation, before a window cut over, while the app
is not healthy on the split, after a rollback or a restore, while another runbook holds the VPS,
while the old database is not frozen safely or was written to after the cut-over, while the
watch of this window never ran, is not over or had a failed check. A second run changes nothing
and says so.
"""

import os

from pyinfra.context import host

from deploy.steps.finalize import final_dump_taken, finalize_allowed, old_database_archived
from deploy.steps.lock import no_other_runbook
from deploy.window import Window

confirmed = "yes" in (
    str(host.data.get("confirm_finalize", "")).lower(),
    os.environ.get("HANDLED_CONFIRM_FINALIZE", "").lower(),
)
without_watch = "yes" in (
    str(host.data.get("finalize_without_watch", "")).lower(),
    os.environ.get("HANDLED_FINALIZE_WITHOUT_WATCH", "").lower(),
)
window = Window.of(host, runbook="finalize")
no_other_runbook(name="Finalize: no other runbook holds the VPS", window=window)
finalize_allowed(
    name="Finalize: confirmed, after a window that cut over healthy",
    window=window,
    confirmed=confirmed,
    without_watch=without_watch,
)
final_dump_taken(
    name="Finalize: last pg_dump of the frozen old database, to Spaces, read back", window=window
)
old_database_archived(
    name="Finalize: rename the old database to its archive name, still frozen", window=window
)
