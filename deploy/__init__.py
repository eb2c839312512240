"""The maintenance-window runbooks, run with pyinfra.

``production.py``, ``rollback.py``, ``restore.py`` and ``check.py`` are pyinfra deploy files
(``pyinfra -y inventory/production.py deploy/production.py``); ``tasks/`` holds their reusable
``@deploy`` steps, ``ops.py`` the custom operations and ``facts.py`` the facts they read, and
``remote/vpsctl.py`` the helper that does the work on the VPS.
"""
