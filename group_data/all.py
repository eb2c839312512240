"""Values shared by every environment (never a secret: those come from deploy/secrets.py).

Paths on the VPS are absolute or relative to the deploy user's home; ``env_file`` may be
relative to ``app_dir``. What the Pulumi stack knows (the CA's path on the VPS, the pool's
size, Prisma's ``pgbouncer=``, the backup bucket, its endpoint and region) is not repeated
here: the deploy reads it from the stack's outputs (``outputs_source``).
"""

# The app
app_user = "deploy"
app_dir = "/home/deploy/handled"
env_file = "apps/backoffice/api/.env"
ecosystem = "ecosystem.config.js"
pm2_apps = ["backoffice-api", "backoffice-web"]
health_url = "http://127.0.0.1:3001/api/health"
health_timeout = 120  # seconds the health gate waits before rolling back
rollback_health_timeout = 60
pnpm_install_args = ["--frozen-lockfile"]

# How to read the health body (the fixture's shape, deploy/remote/apps.py healthy()): the
# value meaning healthy, where the database mode is, and each database's "connected" flag.
health_contract = {
    "ok": {"status": "ok"},
    "mode": "mode",
    "connected": {
        "primary": "databases.primary.connected",
        "data": "databases.data.connected",
    },
}

# The smoke checks (deploy/remote/smoke.py says what each key means), run by the health gate
# before the window declares success, by the rollback and by deploy/check.py. The smoke user
# logs in with the secret SMOKE_PASSWORD; what the checks create they delete again, so a
# passing run leaves no row behind (a rollback counts rows written in split mode).
app_urls = {"api": "http://127.0.0.1:3001", "web": "http://127.0.0.1:3000"}
smoke_user = "smoke@handled.example"
# fmt: off
smoke_checks = [
    {"name": "web page", "app": "web", "method": "GET", "path": "/", "text": ["back office"]},
    {"name": "web health", "app": "web", "method": "GET", "path": "/healthz",
     "json": {"status": "ok"}},
    {"name": "health through the web", "app": "web", "method": "GET", "path": "/api/health",
     "json": {"status": "ok", "databases.primary.connected": True,
              "databases.data.connected": True}, "database": "both"},
    {"name": "log in", "method": "POST", "path": "/api/login",
     "body": {"email": "{smoke_user}", "password": "{smoke_password}"},
     "json": {"user.email": "{smoke_user}"}, "session": "token", "database": "primary"},
    {"name": "session", "method": "GET", "path": "/api/me", "auth": True,
     "json": {"user.email": "{smoke_user}", "permissions": {"contains": "users.manage"},
              "cache": "miss"},
     "database": "primary"},
    {"name": "create user", "method": "POST", "path": "/api/users", "auth": True,
     "body": {"email": "smoke-{run}@handled.example", "displayName": "Smoke {run}"},
     "expect": 201, "json": {"email": "smoke-{run}@handled.example"},
     "save": {"user_id": "id"}, "database": "primary"},
    {"name": "edit user", "method": "PATCH", "path": "/api/users/{user_id}", "auth": True,
     "body": {"displayName": "Smoke {run} edited"},
     "json": {"displayName": "Smoke {run} edited"}, "database": "primary"},
    {"name": "read back the user", "method": "GET", "path": "/api/users/{user_id}",
     "auth": True, "json": {"displayName": "Smoke {run} edited", "isActive": True},
     "database": "primary"},
    {"name": "create role", "method": "POST", "path": "/api/roles", "auth": True,
     "body": {"name": "smoke-{run}"}, "expect": 201, "json": {"name": "smoke-{run}"},
     "save": {"role_id": "id"}, "database": "primary"},
    {"name": "manage roles", "method": "POST", "path": "/api/roles/{role_id}/permissions",
     "auth": True, "body": {"code": "imports.manage"}, "expect": 201,
     "json": {"permissions": {"contains": "imports.manage"}}, "database": "primary"},
    {"name": "assign role", "method": "POST", "path": "/api/users/{user_id}/roles",
     "auth": True, "body": {"roleId": "{role_id}"}, "expect": 201,
     "json": {"roles": {"contains": "smoke-{run}"},
              "permissions": {"contains": "imports.manage"}}, "database": "primary"},
    {"name": "upload CSV (through the web)", "app": "web", "method": "POST",
     "path": "/api/imports?filename=smoke-{run}.csv", "auth": True,
     "body": "sku,qty,price\nab-1,2,3.50\ncd-2,5,1.20\nef-3,1,10\n",
     "content_type": "text/csv", "expect": 201, "json": {"rowCount": 3, "storedRows": 3},
     "save": {"import_id": "id"}, "database": "data"},
    {"name": "transform", "method": "POST", "path": "/api/imports/{import_id}/transform",
     "auth": True, "json": {"transformed": 3, "errors": 0, "status": "transformed"},
     "database": "data"},
    {"name": "export", "method": "GET", "path": "/api/imports/{import_id}/export", "auth": True,
     "text": ["1,AB-1,2,3.50,7.00,transformed", "3,EF-3,1,10,10.00,transformed"],
     "database": "data"},
    {"name": "integration history", "method": "GET", "path": "/api/integration-runs",
     "json": {"runs": {"type": "list"}}, "database": "data"},
    {"name": "session cache", "method": "GET", "path": "/api/me", "auth": True,
     "json": {"cache": "hit", "user.email": "{smoke_user}"}, "database": "primary"},
    {"name": "clean up: import", "method": "DELETE", "path": "/api/imports/{import_id}",
     "auth": True, "json": {"deleted": 1}, "always": True, "database": "data"},
    {"name": "clean up: user", "method": "DELETE", "path": "/api/users/{user_id}", "auth": True,
     "json": {"deleted": 1}, "always": True, "database": "primary"},
    {"name": "clean up: role", "method": "DELETE", "path": "/api/roles/{role_id}", "auth": True,
     "json": {"deleted": 1}, "always": True, "database": "primary"},
]
# fmt: on

# Databases
source_db = "handled"
data_db = "handled_data"
data_role = "handled_data_user"
primary_schemas = ["config", "customer"]

# dbsplit on the VPS
state_dir = ".handled-deploy"  # 0700: the journal, the lock, wheels, the dbsplit reports
venv = ".handled-deploy/venv"
pip_args: list[str] = []
dbsplit_jobs = 2
dbsplit_migrate_args: list[str] = []
report_dir = "reports/deploy"  # on the operator's machine

# Phase 2's pool burst: clients at once (None: twice the stack's poolSize; must exceed it)
pool_burst_clients = None

# The backup (named for the window: <backup_prefix>-<window>.dump)
backup_dir = "backups"
backup_prefix = "handled-pre-split"
backup_key_prefix = "pre-split"
s3_addressing_style = "virtual"
multipart_chunk_mb = 64
disk_margin_mb = 512  # free space needed beyond the dump, the DATA copy and its WAL

# Long steps (backup, upload, dbsplit migrate, restore) print a progress line this often
progress_seconds = 10
# ... and the notifier posts a step's progress at most this often (and when it reaches 100 %)
notify_progress_seconds = 300

# Where the stack's outputs come from: "pulumi" (`pulumi stack output --json --show-secrets`)
# or "file" (the same JSON in stack_outputs_file, or $HANDLED_STACK_OUTPUTS)
outputs_source = "pulumi"
pulumi_stack = None
pulumi_cwd = None
stack_outputs_file = None

# The 48-hour watch (deploy/watch.py): [until, every] in seconds after its install (the
# checklist: every 15 minutes in hour 1, hourly to hour 24, every 4 hours to hour 48); a health
# answer slower than this fails a check; PostgreSQL logs scanned for ERROR/FATAL lines where the
# deploy user can read them (Debian: add it to the group adm); PRIMARY's are DigitalOcean's.
watch_schedule = [[3600, 900], [86400, 3600], [172800, 14400]]
watch_max_response_ms = 2000
watch_pg_logs = {"data": "/var/log/postgresql/postgresql-17-main.log"}
