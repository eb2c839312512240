"""The production VPS that serves ops.handledcommerce.com (group ``production``).

    pyinfra -y inventory/production.py deploy/production.py

Connection settings only; values live in ``group_data/all.py`` and ``group_data/production.py``,
secrets in the environment or the Pulumi stack (``deploy/secrets.py``).
"""

production = [
    ("ops.handledcommerce.com", {"ssh_user": "deploy"}),
]
