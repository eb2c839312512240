"""Values shared by every environment (never a secret: those come from deploy/secrets.py).

Paths on the VPS are absolute or relative to the deploy user's home; ``env_file`` and
``ca_path`` may be relative to ``app_dir``.
"""

# The app
app_user = "deploy"
app_dir = "/home/deploy/handled"
env_file = "apps/backoffice/api/.env"
ca_path = "apps/backoffice/api/certs/primary-ca.crt"
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
pool_size = 15

# dbsplit on the VPS
state_dir = ".handled-deploy"  # 0700: markers, wheels, the dbsplit report
venv = ".handled-deploy/venv"
pip_args: list[str] = []
dbsplit_jobs = 2
dbsplit_migrate_args: list[str] = []
report_dir = "reports/deploy"  # on the operator's machine

# The backup
backup_dir = "backups"
backup_name = "handled-pre-split.dump"
backup_key_prefix = "pre-split"
s3_region = "nyc3"
s3_addressing_style = "virtual"
multipart_chunk_mb = 64
disk_factor = 1.0  # free space needed: this times the source database's size, plus the margin
disk_margin_mb = 512

# Where secrets come from: "env", or "pulumi" (environment variables still win)
secrets_source = "env"
pulumi_stack = None
pulumi_cwd = None
