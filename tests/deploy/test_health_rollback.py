"""A window whose health gate fails: the automatic rollback brings the old database back.

The failure is a realistic one: the deploy user's login environment exports a stale
``PRIMARY_DATABASE_URL``, which ``pm2 restart --update-env`` hands to the app, where it wins over
the new ``.env`` (dotenv never overrides the environment). In split mode the API cannot reach
PRIMARY; in single mode it uses ``DATABASE_URL`` and is fine.
"""

from __future__ import annotations

import os
import pwd
import time

import pytest

from standins.host import http_json
from standins.window import ProcSampler, Window

pytestmark = pytest.mark.slow

STALE = "postgresql://stale:stale@127.0.0.1:1/nowhere?pgbouncer=true"


def _shadow_primary_url(window: Window) -> None:
    """Append the stale export to the deploy user's ~/.handled-env.sh (read by all ssh commands)."""
    path = window.vps.ssh.home / ".handled-env.sh"
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"export PRIMARY_DATABASE_URL='{STALE}'\n")
    entry = pwd.getpwnam(window.vps.ssh.user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def test_failed_health_gate_rolls_back_without_losing_rows(window: Window) -> None:
    api = window.vps.app.api_url
    for _ in range(3):
        assert http_json(f"{api}/api/integration-runs", method="POST", payload={}).status == 201
    runs_before = window.count(window.vps.source, window.vps.source_db, "integration.runs")
    users_before = window.count(window.vps.source, window.vps.source_db, "config.users")
    env_before = window.vps.app.env_path.read_bytes()
    _shadow_primary_url(window)

    with ProcSampler() as sampler:
        run = window.run("production", "-vv", HANDLED_HEALTH_TIMEOUT="10")
    assert run.returncode != 0, str(run)
    assert "health gate failed; rolled back" in run.output, str(run)
    assert "primary not connected" in run.output, str(run)
    print(f"\nwindow with failed gate and automatic rollback: {run.seconds:.1f}s")

    health = window.health()
    assert (health.get("status"), health.get("mode")) == ("ok", "single"), health
    assert window.vps.app.env_path.read_bytes() == env_before
    assert window.count(window.vps.source, window.vps.source_db, "integration.runs") == runs_before
    assert window.count(window.vps.source, window.vps.source_db, "config.users") == users_before
    started = time.monotonic()
    assert http_json(f"{api}/api/integration-runs", method="POST", payload={}).status == 201
    assert time.monotonic() - started < 5
    for secret in window.secret_values():
        assert secret not in run.output, "a secret appears in the output"
        assert secret not in "\n".join(sampler.seen), "a secret appears in a command line"
    for log in window.logs():
        text = log.read_text(errors="replace")
        for secret in window.secret_values():
            assert secret not in text, f"a secret appears in {log}"
