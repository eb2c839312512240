"""The checklist's quick rollback, automated: the app back on the old database.

    pyinfra -y inventory/production.py deploy/rollback.py

A no-op when the app already runs healthy on the old database.
"""

from pyinfra.context import host

from deploy.tasks.rollback import rollback
from deploy.window import Window

rollback(window=Window.of(host))
