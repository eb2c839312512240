"""The 48 hours after the window: install the watch on the VPS (the checklist's schedule).

    pyinfra -y inventory/production.py deploy/watch.py

One crontab line for the deploy user ticks every minute; a tick runs the check that is due
(every 15 minutes in the first hour, hourly to hour 24, every 4 hours to hour 48): what
``deploy/check.py`` checks, plus PostgreSQL's ERROR/FATAL lines where readable, the health
answer's time and replication slots. It appends to ``~/.handled-deploy/watch/watch.log``,
notifies a failed check, and removes its line after the last. A re-run changes nothing.
"""

from pyinfra.context import host

from deploy.steps.watch import watch_installed
from deploy.window import Window

watch_installed(name="Watch: 48 hours of checks installed", window=Window.of(host, runbook="watch"))
