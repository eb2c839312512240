"""Rehearsal values: the stand-ins tell where things are through the environment.

``HANDLED_APP_DIR``, ``HANDLED_HEALTH_URL``, ``HANDLED_API_URL``, ``HANDLED_WEB_URL``,
``HANDLED_HEALTH_TIMEOUT``, ``HANDLED_MULTIPART_CHUNK_MB``, ``HANDLED_REPORT_DIR``,
``HANDLED_PIP_ARGS``, ``HANDLED_WATCH_SCHEDULE``, ``HANDLED_WATCH_PG_LOGS`` (JSON),
``HANDLED_PROGRESS_SECONDS``; the stack's
outputs are the JSON file ``HANDLED_STACK_OUTPUTS`` the stand-ins write, exactly as
``pulumi stack output --json --show-secrets`` prints them.
"""

import json
import os

environment = "rehearsal"
app_user = os.environ.get("HANDLED_VPS_USER", "handled-deploy")
app_dir = os.environ.get("HANDLED_APP_DIR", "/home/handled-deploy/handled")
health_url = os.environ.get("HANDLED_HEALTH_URL", "http://127.0.0.1:3001/api/health")
app_urls = {
    "api": os.environ.get("HANDLED_API_URL", "http://127.0.0.1:3001"),
    "web": os.environ.get("HANDLED_WEB_URL", "http://127.0.0.1:3000"),
}
health_timeout = int(os.environ.get("HANDLED_HEALTH_TIMEOUT", "60"))
rollback_health_timeout = 60
backup_key_prefix = "pre-split/rehearsal"
s3_addressing_style = "path"
multipart_chunk_mb = int(os.environ.get("HANDLED_MULTIPART_CHUNK_MB", "5"))
disk_margin_mb = 16
progress_seconds = float(os.environ.get("HANDLED_PROGRESS_SECONDS", "10"))
report_dir = os.environ.get("HANDLED_REPORT_DIR", "reports/deploy")
outputs_source = "file"
stack_outputs_file = os.environ.get("HANDLED_STACK_OUTPUTS")
pip_args = os.environ.get("HANDLED_PIP_ARGS", "").split()
if os.environ.get("HANDLED_WATCH_SCHEDULE"):  # the tests shorten the 48 hours
    watch_schedule = json.loads(os.environ["HANDLED_WATCH_SCHEDULE"])
if os.environ.get("HANDLED_WATCH_PG_LOGS"):
    watch_pg_logs = json.loads(os.environ["HANDLED_WATCH_PG_LOGS"])
