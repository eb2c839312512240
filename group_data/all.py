"""Values shared by every environment (never a secret: those come from deploy/secrets.py).

Paths on the VPS are absolute or relative to the deploy user's home; ``env_file`` may be
relative to ``app_dir``. What the Pulumi stack knows (the CA's path on the VPS, the pool's
size, the backup bucket, its endpoint and region) is not repeated here: the deploy reads it
from the stack's outputs (``outputs_source``).
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

# The backup (named for the window: <backup_prefix>-<window>.dump)
backup_dir = "backups"
backup_prefix = "handled-pre-split"
backup_key_prefix = "pre-split"
s3_addressing_style = "virtual"
multipart_chunk_mb = 64
disk_margin_mb = 512  # free space needed beyond the dump, the DATA copy and its WAL

# Long steps (backup, upload, dbsplit migrate, restore) print a progress line this often
progress_seconds = 10

# Where the stack's outputs come from: "pulumi" (`pulumi stack output --json --show-secrets`)
# or "file" (the same JSON in stack_outputs_file, or $HANDLED_STACK_OUTPUTS)
outputs_source = "pulumi"
pulumi_stack = None
pulumi_cwd = None
stack_outputs_file = None
