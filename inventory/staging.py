"""The staging VPS (group ``staging``): the window rehearsed against the staging cluster.

pyinfra -y inventory/staging.py deploy/production.py
"""

staging = [
    ("staging.ops.handledcommerce.com", {"ssh_user": "deploy"}),
]
