"""The maintenance window end to end, through pyinfra's CLI, against the stand-ins.

One window per module; the tests run in order: a preflight failure that changes nothing, the
whole window (watched by a /proc sampler, at -vv), a re-run with --diff that changes nothing,
the first-hour check, the manual rollback, and the full restore from Spaces.
"""

from __future__ import annotations

import hashlib
import json
import pwd
import re
import stat
from pathlib import Path

import pytest

from deploy.ops import dbsplit_digest
from standins.host import http_json
from standins.window import BUCKET, ProcSampler, Run, Window

pytestmark = pytest.mark.slow

DIGESTS: list[str] = []
"""The dbsplit sources' digest when the window ran (the work tree is shared and may change)."""


def assert_no_secret(window: Window, text: str, where: str) -> None:
    for secret in window.secret_values():
        assert secret not in text, f"a secret appears in {where}"


def results(run: Run) -> dict[str, tuple[str, str, str]]:
    """The results table: operation name -> (success, error, no change)."""
    rows: dict[str, tuple[str, str, str]] = {}
    table = run.output.split("--> Results:", 1)[-1]
    for line in table.splitlines():
        match = re.match(r"\s+(.+?)\s+1\s+(\S+)\s+(\S+)\s+(\S+)\s*$", line)
        if match:
            rows[match.group(1)] = (match.group(2), match.group(3), match.group(4))
    return rows


def env_file(window: Window) -> Path:
    return window.vps.app.env_path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def frozen(window: Window) -> bool:
    with window.vps.source.connect(window.vps.source_db) as conn:
        row = conn.execute(
            "SELECT coalesce(bool_or(s = 'default_transaction_read_only=on'), false) "
            "FROM pg_db_role_setting r, unnest(r.setconfig) s "
            "WHERE r.setdatabase = (SELECT oid FROM pg_database WHERE datname = %s)",
            [window.vps.source_db],
        ).fetchone()
    return bool(row and row[0])


def test_preflight_failure_changes_nothing(window: Window) -> None:
    before = sha(env_file(window))
    closed = window.dbaas.direct_url(window.primary_db).replace(
        f":{window.dbaas.server.port}/", ":1/"
    )
    run = window.run("production", PRIMARY_DIRECT_URL=closed)
    assert run.returncode != 0, str(run)
    assert "preflight failed, nothing was changed" in run.output, str(run)
    assert "primary-direct" in run.output
    assert_no_secret(window, run.output, "the failed run's output")
    assert sha(env_file(window)) == before
    assert window.health().get("mode") == "single"
    assert not frozen(window)
    assert not (window.vps.ssh.home / ".handled-deploy").exists()
    assert not (window.vps.ssh.home / "backups").exists()
    assert "Contents" not in window.s3.client().list_objects_v2(Bucket=BUCKET)
    with window.data_pg.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", [window.vps.data_db]
        ).fetchone()
    assert row == (0,)


def test_window_succeeds_and_serves_from_the_split(window: Window) -> None:
    users_before = window.count(window.vps.source, window.vps.source_db, "config.users")
    DIGESTS.append(dbsplit_digest())
    with ProcSampler() as sampler:
        run = window.run("production", "-vv")
    assert run.returncode == 0, str(run)
    print(f"\nwindow: {run.seconds:.1f}s")

    health = window.health()
    assert (health.get("status"), health.get("mode")) == ("ok", "split"), health
    assert health["databases"]["primary"]["pooled"] is True
    assert health["databases"]["primary"]["sslmode"] == "verify-full"
    assert health["databases"]["primary"]["database"] == window.primary_db
    assert health["databases"]["data"]["database"] == window.vps.data_db
    api = window.vps.app.api_url
    assert http_json(f"{api}/api/users/count").body == {"count": users_before}
    assert window.primary_count("config.users") == users_before
    assert http_json(f"{api}/api/carriers").ok
    assert http_json(f"{api}/api/integration-runs", method="POST", payload={}).status == 201

    # .env: mode 0600, owned by the app user, the split keys set, every old line kept
    path = env_file(window)
    info = path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == pwd.getpwnam(window.vps.ssh.user).pw_uid
    values = window.vps.app.read_env()
    assert values["SPLIT_DB_MODE"] == "true"
    assert "pgbouncer=true" in values["PRIMARY_DATABASE_URL"]
    assert "sslmode=verify-full" in values["PRIMARY_DIRECT_URL"]
    assert values["AUTH_SECRET"] == window.auth_secret
    assert values["DATABASE_URL"] == window.vps.source_url()
    pre = path.with_name(".env.pre-split")
    assert stat.S_IMODE(pre.stat().st_mode) == 0o600
    assert 'SPLIT_DB_MODE="false"' in pre.read_text()

    # the backup: on the VPS with its checksum, and in the bucket with the same bytes
    dump = window.vps.ssh.home / "backups" / "handled-pre-split.dump"
    digest = sha(dump)
    assert (dump.parent / "handled-pre-split.dump.sha256").read_text().split()[0] == digest
    body = window.s3.client().get_object(Bucket=BUCKET, Key="pre-split/rehearsal/" + dump.name)
    assert hashlib.sha256(body["Body"].read()).hexdigest() == digest
    assert frozen(window)

    report = next(window.report_dir.rglob("dbsplit-migrate-report.json"))
    json.loads(report.read_text())

    assert_no_secret(window, run.output, "pyinfra -vv output")
    assert_no_secret(window, "\n".join(sampler.seen), "a process's command line")
    assert_no_secret(window, report.read_text(), "the dbsplit report")
    for log in window.logs():
        assert_no_secret(window, log.read_text(errors="replace"), f"log {log}")


def test_rerun_changes_nothing_quickly(window: Window) -> None:
    run = window.run("production", "-vv", "--diff")
    assert run.returncode == 0, str(run)
    table = results(run)
    assert table, str(run)
    changed = {name: row for name, row in table.items() if row[0] != "-"}
    if DIGESTS and DIGESTS[0] != dbsplit_digest():  # dbsplit's sources changed meanwhile
        changed.pop("1. Preflight | 1. Preflight: dbsplit installed in a virtualenv", None)
    assert not changed, f"re-run changed {changed}"
    print(f"\nre-run (no changes): {run.seconds:.1f}s")
    assert run.seconds < 30, f"re-run took {run.seconds:.1f}s"
    assert_no_secret(window, run.output, "pyinfra -vv --diff output")
    assert window.health()["mode"] == "split"


def test_first_hour_check(window: Window) -> None:
    run = window.run("check")
    assert run.returncode == 0, str(run)
    assert "primary connections in use" in run.output
    assert "pm2 backoffice-api: online" in run.output
    assert_no_secret(window, run.output, "check output")


def test_manual_rollback_is_quick_and_lossless(window: Window) -> None:
    api = window.vps.app.api_url
    source_runs = window.count(window.vps.source, window.vps.source_db, "integration.runs")
    run = window.run("rollback")
    assert run.returncode == 0, str(run)
    print(f"\nmanual rollback to healthy: {run.seconds:.1f}s")
    assert run.seconds < 30, f"rollback took {run.seconds:.1f}s"
    health = window.health()
    assert (health.get("status"), health.get("mode")) == ("ok", "single"), health
    assert not frozen(window)
    assert window.vps.app.read_env()["SPLIT_DB_MODE"] == "false"
    assert window.count(window.vps.source, window.vps.source_db, "integration.runs") == source_runs
    assert http_json(f"{api}/api/integration-runs", method="POST", payload={}).status == 201
    again = window.run("rollback")
    assert again.returncode == 0, str(again)
    assert all(row[0] == "-" for row in results(again).values()), str(again)


def test_rerun_after_rollback_is_refused(window: Window) -> None:
    before = sha(env_file(window))
    run = window.run("production")
    assert run.returncode != 0, str(run)
    assert "before a rollback" in run.output, str(run)
    assert sha(env_file(window)) == before
    assert window.health()["mode"] == "single"


def test_restore_from_spaces(window: Window) -> None:
    dump = window.vps.ssh.home / "backups" / "handled-pre-split.dump"
    dump.unlink()  # force the download from the bucket
    run = window.run("restore", "-vvv")
    assert run.returncode == 0, str(run)
    assert "downloaded s3://" in run.output, str(run)
    assert "row counts match the backup" in run.output, str(run)
    print(f"\nrestore from Spaces: {run.seconds:.1f}s")
    health = window.health()
    assert (health.get("status"), health.get("mode")) == ("ok", "single"), health
    assert_no_secret(window, run.output, "restore output")
