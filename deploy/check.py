"""The first-hour validation, on demand (run it every 15 minutes in the first hour).

    pyinfra -y inventory/production.py deploy/check.py

Health, connections in use on PRIMARY and DATA against the pool size, pm2 status and restart
counts, error lines in the recent pm2 logs (scrubbed of secrets), and the smoke checks
(``smoke_checks``, recorded in the journal). Exits non-zero when any of them is wrong. Changes
nothing: what the smoke checks create, they delete.
"""

from pyinfra.context import host

from deploy.steps.check import first_hour_check
from deploy.window import Window

first_hour_check(name="First-hour check", window=Window.of(host, runbook="check"))
