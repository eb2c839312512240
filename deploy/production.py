"""The maintenance window: the checklist's Phase 2 and Phase 4, and its automatic rollback.

    pyinfra -y inventory/production.py deploy/production.py

Each step checks first and does nothing when already done, so a re-run after success changes
nothing, and a re-run after a failure continues where it stopped. Any failure stops the run;
a failed health gate rolls back first.
"""

from pyinfra.context import host

from deploy.tasks.app import app
from deploy.tasks.backup import backup
from deploy.tasks.data_database import data_database
from deploy.tasks.envfile import envfile
from deploy.tasks.freeze import stop_and_freeze
from deploy.tasks.health import health_gate
from deploy.tasks.preflight import preflight
from deploy.tasks.split import split
from deploy.window import Window

window = Window.of(host)

preflight(window=window)  # 1. SSH, disk, pg_dump, PRIMARY (verify-full), DATA, dbsplit plan
backup(window=window)  # 2. pg_dump -Fc + sha256 + pg_restore --list, upload to Spaces, checked
stop_and_freeze(window=window)  # 3. pm2 stop, dbsplit freeze
data_database(window=window)  # 4. handled_data and its role
split(window=window)  # 5. dbsplit migrate on the VPS, report back
envfile(window=window)  # 6. CA file, .env (atomic, 0600, .env.pre-split kept)
app(window=window)  # 7-8. pnpm install/generate/migrations/build, pm2 restart --update-env
health_gate(window=window)  # 9. /api/health, else automatic rollback and a non-zero exit
