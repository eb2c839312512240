"""Rehearsal values: the stand-ins tell where things are through the environment.

``HANDLED_APP_DIR``, ``HANDLED_HEALTH_URL``, ``HANDLED_S3_ENDPOINT``, ``HANDLED_BACKUP_BUCKET``,
``HANDLED_HEALTH_TIMEOUT``, ``HANDLED_MULTIPART_CHUNK_MB``, ``HANDLED_REPORT_DIR`` and
``HANDLED_PIP_ARGS``.
"""

import os

environment = "rehearsal"
app_user = os.environ.get("HANDLED_VPS_USER", "handled-deploy")
app_dir = os.environ.get("HANDLED_APP_DIR", "/home/handled-deploy/handled")
health_url = os.environ.get("HANDLED_HEALTH_URL", "http://127.0.0.1:3001/api/health")
health_timeout = int(os.environ.get("HANDLED_HEALTH_TIMEOUT", "60"))
rollback_health_timeout = 60
s3_endpoint = os.environ.get("HANDLED_S3_ENDPOINT")
backup_bucket = os.environ.get("HANDLED_BACKUP_BUCKET", "handled-rehearsal-pg-backups")
backup_key_prefix = "pre-split/rehearsal"
s3_addressing_style = "path"
multipart_chunk_mb = int(os.environ.get("HANDLED_MULTIPART_CHUNK_MB", "5"))
disk_margin_mb = 16
report_dir = os.environ.get("HANDLED_REPORT_DIR", "reports/deploy")
secrets_source = "env"
pip_args = os.environ.get("HANDLED_PIP_ARGS", "").split()
