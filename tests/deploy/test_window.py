"""The maintenance window end to end, through pyinfra's CLI, against the stand-ins.

One window per module; the tests run in order: a preflight failure that changes nothing, the
whole window (watched by a /proc sampler, at -vv), a re-run with --diff that changes nothing,
the first-hour check, the app writing in split mode then a rollback refused with the counts,
the rollback with the writes discarded (dumped to the VPS and to Spaces first), a re-run
refused because of the stale split, and the restore from Spaces (refused over newer writes,
then allowed).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import pwd
import re
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from dbsplit.fingerprint import checksums
from dbsplit.freeze import check
from dbsplit.pgtools import child_args
from dbsplit.urls import parse as parse_url
from deploy.progress import ProgressLine, parse
from deploy.steps.tooling import dbsplit_digest
from standins.host import http_json
from standins.window import BUCKET, ProcSampler, Run, Window
from tests.deploy.helpers import (
    assert_no_secret,
    backups,
    changed,
    count,
    freeze_check,
    frozen,
    journal,
    sha,
    window_state,
)

pytestmark = pytest.mark.slow

DIGESTS: list[str] = []
"""The dbsplit sources' digest when the window ran (the work tree is shared and may change)."""


def test_preflight_failure_changes_nothing(window: Window) -> None:
    before = sha(window.vps.app.env_path)
    closed = window.dbaas.direct_url(window.primary_db).replace(
        f":{window.dbaas.server.port}/", ":1/"
    )
    run = window.run("production", PRIMARY_DIRECT_URL=closed)
    assert run.returncode != 0, str(run)
    assert "preflight failed, nothing was changed" in run.output, str(run)
    assert "primary-direct" in run.output
    assert_no_secret(window, run.output, "the failed run's output")
    full = window.run("production", "--data", "disk_margin_mb=100000000")  # 95 TiB to spare
    assert full.returncode != 0, str(full)
    assert "preflight failed, nothing was changed: disk (" in full.output, str(full)
    assert "MiB needed (dump up to" in full.output
    assert sha(window.vps.app.env_path) == before
    assert window.health().get("mode") == "single"
    assert not frozen(window)
    assert journal(window) == []
    assert not (window.vps.ssh.home / "backups").exists()
    assert "Contents" not in window.s3.client().list_objects_v2(Bucket=BUCKET)
    with window.data_pg.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", [window.vps.data_db]
        ).fetchone()
    assert row == (0,)


def live_progress(lines: list[tuple[float, str]], operation: str) -> list[ProgressLine]:
    """The progress lines pyinfra printed while ``operation`` ran, each stamped when it came;
    the last item is the operation's end (the next one's start), as a line of step ``end``."""
    start = next(i for i, (_, ln) in enumerate(lines) if f"Starting operation: {operation}" in ln)
    end = next(
        (i for i in range(start + 1, len(lines)) if "Starting operation:" in lines[i][1]),
        len(lines) - 1,
    )
    found = [parse(ln, at) for at, ln in lines[start:end]]
    return [p for p in found if p is not None] + [ProgressLine("", "end", "", lines[end][0])]


def running(action: str, user: str) -> bool:
    """Whether the remote action (``python3 -c <bootstrap> <action>``) runs now on the VPS, as
    its deploy user (other checkouts' test worlds have their own)."""
    uid = pwd.getpwnam(user).pw_uid
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if len(argv) > 2 and argv[-2] == action.encode() and entry.stat().st_uid == uid:
                return True
    return False


def test_window_succeeds_and_serves_from_the_split(window: Window) -> None:
    users_before = count(window, "config.users")
    DIGESTS.append(dbsplit_digest())
    stamped: list[tuple[float, str]] = []
    alive: dict[str, bool] = {}  # was the step's action still running when its line came?
    actions = {"backup": "backup.take", "copy": "split.migrate"}

    def seen(line: str) -> None:
        stamped.append((time.time(), line))
        found = parse(line)
        if found is not None and found.step in actions and found.step not in alive:
            alive[found.step] = running(actions[found.step], window.vps.ssh.user)

    with ProcSampler() as sampler:
        run = window.run("production", "-vv", HANDLED_PROGRESS_SECONDS="0.1", on_line=seen)
    assert run.returncode == 0, str(run)
    print(f"\nwindow: {run.seconds:.1f}s")

    # the long steps' progress, printed while they ran (at -vv pyinfra prints no output of a
    # command that succeeds): the first line reached us while the step's process still ran
    assert alive == {"backup": True, "copy": True}, alive
    for operation, step in (
        ("4. Backup: pg_dump", "backup"),
        ("4. Backup: upload", "upload"),
        ("5. dbsplit migrate", "copy"),
    ):
        *shown, end = live_progress(stamped, operation)
        mine = [p for p in shown if p.step == step]
        assert mine, f"no progress line for {step} in {operation}: {shown}"
        assert mine[-1].finished, mine[-1]
        assert re.search(r"\d+(\.\d+)? [KMG]?i?B/s", mine[0].text), mine[0]
        print(f"{step}: first progress line {end.at - mine[0].at:.2f}s before the step's end")
    copy = [p for p in live_progress(stamped, "5. dbsplit migrate") if p.step == "copy"]
    assert "left" in copy[0].text, copy[0]
    assert "%" in copy[0].text, copy[0]

    health = window.health()
    assert (health.get("status"), health.get("mode")) == ("ok", "split"), health
    assert health["databases"]["primary"]["pooled"] is True
    assert health["databases"]["primary"]["sslmode"] == "verify-full"
    assert health["databases"]["primary"]["database"] == window.primary_db
    assert health["databases"]["data"]["database"] == window.vps.data_db
    api = window.vps.app.api_url
    assert http_json(f"{api}/api/users/count").body == {"count": users_before}
    assert count(window, "config.users", where="primary") == users_before
    assert http_json(f"{api}/api/carriers").ok

    # .env: mode 0600, owned by the app user, the split keys set, every old line kept
    path = window.vps.app.env_path
    info = path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == pwd.getpwnam(window.vps.ssh.user).pw_uid
    values = window.vps.app.read_env()
    assert values["SPLIT_DB_MODE"] == "true"
    assert "pgbouncer=true" in values["PRIMARY_DATABASE_URL"]
    assert "sslmode=verify-full" in values["PRIMARY_DIRECT_URL"]
    outputs = json.loads(window.stack_outputs().read_text())
    assert (
        f"sslrootcert={outputs['caCertPath'].replace('/', '%2F')}" in values["PRIMARY_DIRECT_URL"]
    )
    assert values["AUTH_SECRET"] == window.auth_secret
    assert values["DATABASE_URL"] == window.vps.source_url()
    pre = path.with_name(".env.pre-split")
    assert stat.S_IMODE(pre.stat().st_mode) == 0o600
    assert 'SPLIT_DB_MODE="false"' in pre.read_text()

    # the source stays frozen, no role but superusers may connect, at its copy's position
    checked = freeze_check(window)
    assert checked.ok, checked.problems
    state = window_state(window)
    assert state["cutover"]["horizon"]["primary"]
    assert state["verify"]["ok"] is True
    assert state["split"]["source_position"] == checked.position.to_json()  # type: ignore[union-attr]
    gate = state["cutover"]["gate"]  # the source stayed at the copy's position to the cut-over
    assert gate["positions"]["source"] == state["split"]["source_position"]
    assert gate["verify_run"] == state["verify"]["run"]
    steps = [e["step"] for e in journal(window) if e["event"] == "done"]
    for step in ("freeze", "backup", "backup-upload", "split", "verify", "env", "restart-split"):
        assert step in steps, steps
    assert steps.index("freeze") < steps.index("backup") < steps.index("split")

    # the backup: after the freeze, named for the window, checksummed, the same bytes in Spaces
    (dump,) = backups(window)
    assert state["window"] in dump.name
    manifest = json.loads(dump.with_name(dump.name + ".json").read_text())
    assert manifest["sha256"] == sha(dump)
    assert manifest["position"] == checked.position.to_json()  # type: ignore[union-attr]
    assert manifest["checksums"]["config.users"]["rows"] == users_before
    key = f"pre-split/rehearsal/{dump.name}"
    body = window.s3.client().get_object(Bucket=BUCKET, Key=key)
    assert sha(dump) == __import__("hashlib").sha256(body["Body"].read()).hexdigest()

    reports = sorted(window.report_dir.rglob("dbsplit-*.json"))
    assert {r.name.split("-")[1] for r in reports} == {"migrate", "verify"}, reports
    assert json.loads(next(r for r in reports if "verify" in r.name).read_text())["ok"] is True

    assert_no_secret(window, run.output, "pyinfra -vv output")
    assert_no_secret(window, "\n".join(sampler.seen), "a process's command line")
    for report in reports:
        assert_no_secret(window, report.read_text(), f"the report {report.name}")
    for log in window.logs():
        assert_no_secret(window, log.read_text(errors="replace"), f"log {log}")


def test_rerun_changes_nothing_quickly(window: Window) -> None:
    run = window.run("production", "-vv", "--diff")
    assert run.returncode == 0, str(run)
    found = changed(run)
    if DIGESTS and DIGESTS[0] != dbsplit_digest():  # dbsplit's sources changed meanwhile
        found.pop("1. Preflight: dbsplit installed in a virtualenv", None)
    assert not found, f"re-run changed {found}"
    print(f"\nre-run (no changes): {run.seconds:.1f}s")
    assert run.seconds < 30, f"re-run took {run.seconds:.1f}s"
    assert_no_secret(window, run.output, "pyinfra -vv --diff output")
    assert window.health()["mode"] == "split"


def test_first_hour_check(window: Window) -> None:
    run = window.run("check")
    assert run.returncode == 0, str(run)
    assert "primary connections in use" in run.output
    assert "(pool size 15)" in run.output
    assert "pm2 backoffice-api: online" in run.output
    assert_no_secret(window, run.output, "check output")


def test_rollback_after_split_writes_is_refused_with_the_counts(window: Window) -> None:
    api = window.vps.app.api_url
    for _ in range(3):
        assert http_json(f"{api}/api/integration-runs", method="POST", payload={}).status == 201
    run = window.run("rollback", "-v")
    assert run.returncode != 0, str(run)
    assert "rollback refused: the app wrote in split mode" in run.output, str(run)
    assert "data integration.runs: 3 written, 0 deleted or replaced" in run.output, str(run)
    assert "discard_split_writes=yes" in run.output
    assert not changed(run), "a refused rollback changes nothing"
    assert frozen(window), "the source stays frozen while the split's rows are not accounted"
    assert window.vps.app.read_env()["SPLIT_DB_MODE"] == "true"
    assert window.health()["mode"] == "split", "the app still runs on the split"


def test_rollback_with_discard_dumps_the_rows_first(window: Window) -> None:
    api = window.vps.app.api_url
    written = http_json(f"{api}/api/integration-runs").body
    source_runs = count(window, "integration.runs")
    run = window.run("rollback", HANDLED_DISCARD_SPLIT_WRITES="yes")
    assert run.returncode == 0, str(run)
    print(f"\nrollback (split writes dumped) to healthy: {run.seconds:.1f}s")
    health = window.health()
    assert (health.get("status"), health.get("mode")) == ("ok", "single"), health
    assert not frozen(window)
    assert window.vps.app.read_env()["SPLIT_DB_MODE"] == "false"
    assert count(window, "integration.runs") == source_runs

    dumped = window_state(window)["split_writes_dumped"]
    assert dumped["tables"]["data integration.runs"]["written"] == 3
    path = window.vps.ssh.home / "backups" / dumped["folder"].split("/backups/")[1]
    with (path / "data" / "integration.runs.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    assert {str(r["id"]) for r in rows} <= {str(r.get("id")) for r in written["runs"]}, written
    keys = {u["key"] for u in dumped["uploaded"]}
    listed = window.s3.client().list_objects_v2(Bucket=BUCKET)["Contents"]
    assert keys <= {o["Key"] for o in listed}
    assert any(k.endswith("data/integration.runs.csv") for k in keys)

    assert http_json(f"{api}/api/integration-runs", method="POST", payload={}).status == 201
    again = window.run("rollback")
    assert again.returncode == 0, str(again)
    assert not changed(again), str(again)


def test_rerun_after_rollback_is_refused(window: Window) -> None:
    before = sha(window.vps.app.env_path)
    run = window.run("production")
    assert run.returncode != 0, str(run)
    assert "before a rollback" in run.output, str(run)
    assert sha(window.vps.app.env_path) == before
    assert window.health()["mode"] == "single"


def test_restore_from_spaces(window: Window) -> None:
    (dump,) = backups(window)
    manifest = json.loads(dump.with_name(dump.name + ".json").read_text())
    dump.unlink()  # force the download from the bucket
    refused = window.run("restore")
    assert refused.returncode != 0, str(refused)
    assert "restore refused, nothing was changed" in refused.output
    newer = window.run("restore", "-vvv", HANDLED_CONFIRM_RESTORE="yes")
    assert newer.returncode != 0, str(newer)
    assert "restore refused, nothing was changed: the source has writes newer" in newer.output
    assert f"downloaded s3://{BUCKET}/pre-split/rehearsal/{dump.name}" in newer.output
    assert sha(dump) == manifest["sha256"]
    assert window.health()["mode"] == "single", "a refused restore leaves the app running"
    assert (
        count(window, "integration.runs") == manifest["checksums"]["integration.runs"]["rows"] + 1
    )

    run = window.run(
        "restore", "-vvv", HANDLED_CONFIRM_RESTORE="yes", HANDLED_RESTORE_OVER_NEWER_WRITES="yes"
    )
    assert run.returncode == 0, str(run)
    assert "match the backup's row counts and checksums" in run.output, str(run)
    print(f"\nrestore from Spaces: {run.seconds:.1f}s")
    health = window.health()
    assert (health.get("status"), health.get("mode")) == ("ok", "single"), health
    assert count(window, "integration.runs") == manifest["checksums"]["integration.runs"]["rows"]
    with window.data_pg.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", [window.vps.data_db]
        ).fetchone()
    assert row == (0,), "handled_data is dropped (after its dump) by the full restore"
    assert_no_secret(window, run.output, "restore output")


def _source_sums(window: Window) -> dict[str, object]:
    from dbsplit.fingerprint import checksums
    from dbsplit.urls import parse

    found = checksums(parse(window.vps.source.url(window.vps.source_db)))
    return dict(found["tables"])


def test_pg_restore_killed_half_way_leaves_the_source_as_it_was(window: Window) -> None:
    before = _source_sums(window)
    killed: list[int] = []
    stop = threading.Event()

    def kill_pg_restore() -> None:
        while not stop.is_set() and not killed:
            for entry in Path("/proc").iterdir():
                try:
                    argv = (entry / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if argv and argv[0].endswith(b"pg_restore") and b"--list" not in argv:
                    pid = int(entry.name)
                    os.kill(pid, signal.SIGSTOP)  # caught mid-stream: then it dies there
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    break
            time.sleep(0.002)

    watcher = threading.Thread(target=kill_pg_restore, daemon=True)
    watcher.start()
    try:
        run = window.run(
            "restore", HANDLED_CONFIRM_RESTORE="yes", HANDLED_RESTORE_OVER_NEWER_WRITES="yes"
        )
    finally:
        stop.set()
        watcher.join(timeout=5)
    assert killed, "pg_restore was never seen"
    assert run.returncode != 0, str(run)
    assert "pg_restore failed, nothing was committed" in run.output, str(run)
    assert _source_sums(window) == before, "the source is as it was"
    with window.vps.source.connect() as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s",
            [window.vps.source_db + "_restore_%"],
        ).fetchall()
    assert left == [], "the half-restored database is dropped"
    back = window.run("rollback")
    assert back.returncode == 0, str(back)
    assert window.health().get("mode") == "single"


def _databases(window: Window, pattern: str) -> list[str]:
    with window.vps.source.connect() as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1", [pattern]
        ).fetchall()
    return [str(r[0]) for r in rows]


def test_finalize_refuses_without_a_healthy_cut_over(window: Window) -> None:
    before = journal(window)
    unasked = window.run("finalize")
    assert unasked.returncode != 0, str(unasked)
    assert "finalize refused, nothing was changed: it archives the old database" in unasked.output
    refused = window.run("finalize", HANDLED_CONFIRM_FINALIZE="yes")
    assert refused.returncode != 0, str(refused)
    assert "finalize refused, nothing was changed: window" in refused.output, str(refused)
    assert "was rolled back at" in refused.output
    for run in (unasked, refused):
        assert not changed(run), str(run)
    assert journal(window) == before
    assert _databases(window, window.vps.source_db) == [window.vps.source_db]
    assert _databases(window, "%_pre_split_%") == []
    assert window.health()["mode"] == "single"


def test_finalize_archives_the_old_database_and_closes_the_way_back(
    window: Window, tmp_path: Path
) -> None:
    reset = window.run("reset_split", HANDLED_CONFIRM_RESET="yes")
    assert reset.returncode == 0, str(reset)
    during: dict[str, Run] = {}

    def finalize_during_the_copy(line: str) -> None:
        if "Starting operation: 5. dbsplit migrate" in line and not during:
            during["run"] = window.run("finalize", HANDLED_CONFIRM_FINALIZE="yes")

    again = window.run("production", on_line=finalize_during_the_copy)
    assert again.returncode == 0, str(again)
    held = during["run"]
    assert held.returncode != 0, str(held)
    assert "another window is running on this VPS" in held.output, str(held)
    assert not changed(held)
    state = window_state(window)
    env_pre_split = window.vps.app.env_path.with_name(".env.pre-split")
    kept = sha(env_pre_split)

    run = window.run("finalize", "-v", HANDLED_CONFIRM_FINALIZE="yes")
    assert run.returncode == 0, str(run)
    print(f"\nfinalize: {run.seconds:.1f}s")
    assert_no_secret(window, run.output, "finalize output")
    record = window_state(window)["finalized"]
    day = state["cutover"]["at"][:10].replace("-", "")
    archive = f"{window.vps.source_db}_pre_split_{day}"
    assert record["archive"] == archive
    assert _databases(window, window.vps.source_db) == []
    assert _databases(window, archive) == [archive]
    with window.vps.source.connect(archive) as conn:  # frozen as it was, under its new name
        checked = check(conn, settle=0)
    assert checked.ok, checked.problems
    assert checked.position is not None
    assert checked.position.to_json() == state["cutover"]["gate"]["positions"]["source"]
    assert record["env_pre_split"]["sha256"] == kept == sha(env_pre_split)
    assert window.health()["mode"] == "split"

    # the last dump: in Spaces (the same bytes as on the VPS), and restorable into the archive
    dump = window.vps.ssh.home / "backups" / Path(record["dump"]["file"]).name
    key = record["uploaded"]["key"]
    body = window.s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == record["dump"]["sha256"] == sha(dump)
    scratch = window.vps.source.fresh_database(prefix="finalcheck")
    try:
        downloaded = tmp_path / "downloaded.dump"
        downloaded.write_bytes(body)
        # the VPS's pg_dump is as new as PRIMARY's (17); into the source's 15, as the restore
        # does it: pg_restore's SQL without the settings 15 lacks, one transaction
        pg_restore = [str(window.data_pg.bin("pg_restore")), "--no-owner", "--no-acl"]
        listed = subprocess.run(
            [*pg_restore, "-f", "-", str(downloaded)],
            capture_output=True,
            check=True,
        ).stdout.splitlines(keepends=True)
        script = b"".join(ln for ln in listed if not ln.startswith(b"SET transaction_timeout"))
        conninfo, env = child_args(parse_url(window.vps.source.url(scratch)))
        psql = [str(window.vps.source.bin("psql")), "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1"]
        loaded = subprocess.run(
            [*psql, "-d", conninfo],
            input=script,
            env=env,
            capture_output=True,
            check=False,
        )
        assert loaded.returncode == 0, loaded.stderr.decode(errors="replace")[-500:]
        restored = checksums(parse_url(window.vps.source.url(scratch)))["tables"]
        archived = checksums(parse_url(window.vps.source.url(archive)))["tables"]
        assert restored == archived
        assert sum(t["rows"] for t in restored.values()) > 0, restored
    finally:
        window.vps.source.drop_database(scratch)

    rerun = window.run("finalize", "-v", HANDLED_CONFIRM_FINALIZE="yes")
    assert rerun.returncode == 0, str(rerun)
    assert not changed(rerun), str(rerun)
    assert f"archived as {archive}; nothing to do" in rerun.output, str(rerun)

    back = window.run("rollback")
    assert back.returncode != 0, str(back)
    lines = [ln for ln in back.output.splitlines() if "rollback refused" in ln]
    assert len(lines) == 1, back.output
    for part in ("was finalized at", archive, f"s3://{BUCKET}/{key}", "rename the archive"):
        assert part in lines[0], lines[0]
    assert not changed(back)
    assert window.health()["mode"] == "split"
    window.vps.source.drop_database(archive)  # the session's server outlives this module
