"""The maintenance window end to end, through pyinfra's CLI, against the stand-ins.

One window per module; the tests run in order: a preflight failure that changes nothing, the
whole window (watched by a /proc sampler, at -vv), a re-run with --diff that changes nothing,
the first-hour check, the 48-hour watch (installed, ticked as its crontab line says on a
shortened schedule, failing and notifying while the app is stopped, removing itself), the app
writing in split mode then a rollback refused with the counts,
the rollback with the writes discarded (dumped to the VPS and to Spaces first), a re-run
refused because of the stale split, and the restore from Spaces (refused over newer writes,
then allowed). A local HTTP server stands in for Slack: the stack's outputs point the notifier
at it, and each runbook's messages are checked in order.
"""

from __future__ import annotations

import calendar
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
from collections.abc import Iterator
from pathlib import Path

import psycopg
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
    SlackReceiver,
    assert_no_secret,
    assert_smoke_passed,
    backups,
    changed,
    count,
    crontab_line,
    freeze_check,
    frozen,
    journal,
    readable_by_all,
    results,
    sha,
    tick,
    watch_dir,
    watch_elapsed,
    watch_log,
    window_state,
)

pytestmark = pytest.mark.slow

DIGESTS: list[str] = []
"""The dbsplit sources' digest when the window ran (the work tree is shared and may change)."""

LABEL = "[rehearsal] "


@pytest.fixture(scope="module", autouse=True)
def slack(window: Window) -> Iterator[SlackReceiver]:
    """Slack's stand-in; the stack's outputs name its webhook (a secret)."""
    receiver = SlackReceiver()
    window.extra_outputs["notifySlackWebhook"] = receiver.url
    yield receiver
    receiver.stop()


PROGRESS: list[str] = []
"""The long steps' progress messages the notifier posted (kept apart from the step messages)."""


def messages(slack: SlackReceiver, window: Window, run_output: str) -> list[str]:
    """The messages since the last look, unlabelled; none shows a secret or the webhook."""
    found = slack.take()
    assert found, "no message arrived"
    for text in found:
        assert text.startswith(LABEL), text
        assert_no_secret(window, text, "a notification")
        assert slack.token not in text
    assert slack.token not in run_output
    said = [text.removeprefix(LABEL) for text in found]
    PROGRESS.extend(t for t in said if t.startswith("progress "))
    return [t for t in said if not t.startswith("progress ")]


def done(found: list[str]) -> list[str]:
    """The names of the steps the messages say are done."""
    return [m.group(1) for t in found if (m := re.match(r"done: (.+) in \d+\.\ds", t))]


def test_preflight_failure_changes_nothing(window: Window, slack: SlackReceiver) -> None:
    before = sha(window.vps.app.env_path)
    closed = window.dbaas.direct_url(window.primary_db).replace(
        f":{window.dbaas.server.port}/", ":1/"
    )
    run = window.run("production", PRIMARY_DIRECT_URL=closed)
    assert run.returncode != 0, str(run)
    assert "preflight failed, nothing was changed" in run.output, str(run)
    assert "primary-direct" in run.output
    assert_no_secret(window, run.output, "the failed run's output")
    said = messages(slack, window, run.output)
    assert said[0].startswith("window started on "), said
    assert done(said) == ["1. Preflight: no other runbook holds the VPS"], said
    failed = "FAILED: 1. Preflight: source, disk, pg_dump, PRIMARY (verify-full), DATA after "
    assert said[2].startswith(failed), said
    assert "preflight failed, nothing was changed" in said[2]
    assert said[3].startswith("window stopped on "), said
    assert len(said) == 4, said
    full = window.run("production", "--data", "disk_margin_mb=100000000")  # 95 TiB to spare
    assert full.returncode != 0, str(full)
    assert "preflight failed, nothing was changed: disk (" in full.output, str(full)
    assert "MiB needed (dump up to" in full.output
    said = messages(slack, window, full.output)
    assert [t.split(" after ")[0] for t in said if t.startswith("FAILED: ")] == [failed[:-7]], said
    assert "preflight failed, nothing was changed: disk (" in said[2], said
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


def test_window_succeeds_and_serves_from_the_split(window: Window, slack: SlackReceiver) -> None:
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
    # the smoke checks passed in split mode before the window declared success, and what they
    # created they deleted (the user count above is the one before the window)
    cutover = state["smoke"]["cutover"]
    assert cutover["mode"] == "split"
    assert_smoke_passed(cutover["checks"])
    assert cutover["at"] >= state["restarted_at"]
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

    # the communication plan: started, every step that ran in order, the success with numbers
    said = messages(slack, window, run.output)
    ran = [n for n in results(run) if "11. Rollback" not in n and "11. Deploy failed" not in n]
    assert said[0].startswith("window started on "), said
    assert ran[-1] == "12. Announce the success with its numbers", ran
    assert done(said) == ran[:-1], said
    assert len(said) == len(ran) + 1, said
    stopped = time.strptime(state["app_stopped"]["at"], "%Y-%m-%dT%H:%M:%SZ")
    healthy = state.get("healthy", {})  # absent when healthy at the gate's first look
    back = healthy["at"] if healthy.get("mode") == "split" else state["restarted_at"]
    freeze = calendar.timegm(time.strptime(back, "%Y-%m-%dT%H:%M:%SZ")) - calendar.timegm(stopped)
    split = state["split"]
    assert said[-1].startswith(f"window {state['window']} succeeded"), said[-1]
    assert f"write freeze {freeze:.0f}s (app stopped {state['app_stopped']['at']}, " in said[-1]
    assert f"{split['rows']} rows in {split['tables']} tables copied" in said[-1], said[-1]
    assert "verify passed" in said[-1]
    assert f"backup {manifest['size']} bytes" in said[-1], said[-1]
    print(f"\nsuccess message: {said[-1]}")
    for step in ("backup", "copy"):  # each long step's progress reached the notifier too
        assert any(p.startswith(f"progress {step}: ") for p in PROGRESS), PROGRESS

    assert_no_secret(window, run.output, "pyinfra -vv output")
    assert_no_secret(window, "\n".join(sampler.seen), "a process's command line")
    for report in reports:
        assert_no_secret(window, report.read_text(), f"the report {report.name}")
    for log in window.logs():
        assert_no_secret(window, log.read_text(errors="replace"), f"log {log}")


def test_rerun_changes_nothing_quickly(window: Window, slack: SlackReceiver) -> None:
    slack.mode = "hang"  # a notifier that never answers neither fails nor holds up the run
    try:
        run = window.run("production", "-vv", "--diff")
    finally:
        slack.mode = "ok"
    assert run.returncode == 0, str(run)
    assert "notification not sent (slack webhook: " in run.output, str(run)
    assert slack.take() == []
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
    assert "smoke ok: manage roles [primary]" in run.output, str(run)
    assert "smoke ok: upload CSV (through the web) [data]" in run.output
    checked = window_state(window)["smoke"]["check"]
    assert checked["mode"] == "split"
    assert_smoke_passed(checked["checks"])
    assert_no_secret(window, run.output, "check output")


def test_first_hour_check_fails_when_a_feature_is_broken(window: Window) -> None:
    """The app's role loses INSERT on ``config.role_permissions`` on PRIMARY (a grant the split
    forgot): health stays green, the smoke check "manage roles" fails the check."""
    users = count(window, "config.users", where="primary")
    grant = "{} INSERT ON config.role_permissions {} " + window.dbaas.admin_user
    with window.dbaas.server.connect(window.primary_db) as conn:
        conn.execute(grant.format("REVOKE", "FROM"))
    try:
        run = window.run("check")
    finally:
        with window.dbaas.server.connect(window.primary_db) as conn:
            conn.execute(grant.format("GRANT", "TO"))
    assert run.returncode != 0, str(run)
    assert "health: ok" in run.output
    assert "smoke FAILED: manage roles [primary]" in run.output, str(run)
    assert "permission denied for table role_permissions" in run.output
    checks = {c["name"]: c for c in window_state(window)["smoke"]["check"]["checks"]}
    assert not checks["manage roles"]["ok"]
    assert checks["manage roles"]["status"] == 500
    assert checks["upload CSV (through the web)"]["ok"], "the other features still work"
    assert checks["clean up: role"]["ok"]
    assert checks["clean up: user"]["ok"]
    assert count(window, "config.users", where="primary") == users, "nothing left behind"
    assert_no_secret(window, run.output, "check output")


WATCH_SCHEDULE = json.dumps([[8, 8], [14, 6]])
"""The 48 hours shortened: checks at 0, 8 and 14 seconds after the install."""


def test_the_watch_checks_logs_notifies_and_removes_itself(
    window: Window, slack: SlackReceiver
) -> None:
    log_path = window.data_pg.log_path
    logs = json.dumps({"data": str(log_path)})
    with pytest.raises(psycopg.errors.UndefinedTable), window.data_pg.connect() as conn:
        conn.execute("SELECT * FROM before_the_watch")  # an ERROR before the watch: not counted
    with readable_by_all(log_path):  # as `adduser deploy adm` would make the real one
        run = window.run("watch", HANDLED_WATCH_SCHEDULE=WATCH_SCHEDULE, HANDLED_WATCH_PG_LOGS=logs)
        assert run.returncode == 0, str(run)
        assert "Watch: 48 hours of checks installed" in changed(run), str(run)
        line = crontab_line(window)
        assert line is not None
        assert line.startswith("* * * * * ")
        folder = watch_dir(window)  # the tick's request holds secrets, as a step's stdin does
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE((folder / "request.json").stat().st_mode) == 0o600
        assert_no_secret(window, line, "the crontab line")
        tick(window, line)  # the check at 0 s
        first = watch_log(window)
        assert re.search(r"check 1/3 \(\+0s\): ok\n", first), first
        assert f"health: ok (data {window.vps.data_db}, primary {window.primary_db})" in first
        assert "primary connections in use: " in first
        assert "pm2 backoffice-api: online" in first
        assert "response time: " in first
        assert "data PostgreSQL log " in first
        assert "new line(s) scanned, 0 ERROR/FATAL" in first
        assert "data replication slots: none" in first
        assert "smoke ok: log in [primary]" in first  # the smoke checks run in the watch too
        tick(window, line)
        assert watch_log(window) == first, "nothing is due before 8 s"

        again = window.run(
            "watch", HANDLED_WATCH_SCHEDULE=WATCH_SCHEDULE, HANDLED_WATCH_PG_LOGS=logs
        )
        assert again.returncode == 0, str(again)
        assert not changed(again), str(again)

        # break things for real: the API stopped, an ERROR in DATA's PostgreSQL log
        window.vps.app.pm2("stop backoffice-api")
        with pytest.raises(psycopg.errors.DivisionByZero), window.data_pg.connect() as conn:
            conn.execute("SELECT 1/0")
        time.sleep(max(0.0, 8.2 - watch_elapsed(window)))
        tick(window, line)
        second = watch_log(window).removeprefix(first)
        assert re.search(r"check 2/3 \(\+8s\): FAILED\n", second), second
        assert "pm2 app backoffice-api is stopped" in second
        assert "1 ERROR/FATAL line(s) in data's PostgreSQL log" in second
        assert "ERROR:  division by zero" in second
        said = messages(slack, window, second)
        assert len(said) == 1, said
        assert said[0].startswith("watch check 2/3 (+8s): FAILED: health: API not answering")

        window.vps.app.restart(mode="split")
        time.sleep(max(0.0, 14.2 - watch_elapsed(window)))
        tick(window, line)
    third = watch_log(window).removeprefix(first + second)
    assert re.search(r"check 3/3 \(\+14s\): ok\n", third), third
    assert "the watch is over: 3 checks since " in third
    assert crontab_line(window) is None, "the watch removed its crontab line"
    said = messages(slack, window, third)
    log = watch_dir(window) / "watch.log"
    assert said == [f"the 48-hour watch is over: 3 checks, log {log}"], said
    tick(window, line)  # a tick cron had already started does nothing more
    assert watch_log(window) == first + second + third
    assert_no_secret(window, watch_log(window), "the watch's log")
    assert_no_secret(window, (folder / "tick.out").read_text(), "the ticks' output")


def test_rollback_after_split_writes_is_refused_with_the_counts(
    window: Window, slack: SlackReceiver
) -> None:
    api = window.vps.app.api_url
    for _ in range(3):
        assert http_json(f"{api}/api/integration-runs", method="POST", payload={}).status == 201
    run = window.run("rollback", "-v")
    assert run.returncode != 0, str(run)
    assert "rollback refused: the app wrote in split mode" in run.output, str(run)
    assert "data integration.runs: 3 written, 0 deleted or replaced" in run.output, str(run)
    assert "discard_split_writes=yes" in run.output
    said = messages(slack, window, run.output)
    assert said[0].startswith("rollback started on "), said
    assert done(said)[0] == "Rollback: no other runbook holds the VPS", said
    refused = [t for t in said if t.startswith("FAILED: Rollback: rows the app wrote in split")]
    assert len(refused) == 1, said
    assert "rollback refused: the app wrote in split mode" in refused[0]
    assert said[-1].startswith("rollback FAILED: Rollback: rows the app wrote"), said
    assert not changed(run), "a refused rollback changes nothing"
    assert frozen(window), "the source stays frozen while the split's rows are not accounted"
    assert window.vps.app.read_env()["SPLIT_DB_MODE"] == "true"
    assert window.health()["mode"] == "split", "the app still runs on the split"


def test_rollback_with_discard_dumps_the_rows_first(window: Window, slack: SlackReceiver) -> None:
    api = window.vps.app.api_url
    written = http_json(f"{api}/api/integration-runs").body
    source_runs = count(window, "integration.runs")
    run = window.run("rollback", HANDLED_DISCARD_SPLIT_WRITES="yes")
    assert run.returncode == 0, str(run)
    print(f"\nrollback (split writes dumped) to healthy: {run.seconds:.1f}s")
    health = window.health()
    assert (health.get("status"), health.get("mode")) == ("ok", "single"), health
    said = messages(slack, window, run.output)
    assert said[0].startswith("rollback started on "), said
    assert "Rollback: healthy on the old database, then the smoke checks" in done(said), said
    assert not [t for t in said if t.startswith("FAILED")], said
    assert said[-1].startswith("rollback finished on "), said
    assert not frozen(window)
    assert window.vps.app.read_env()["SPLIT_DB_MODE"] == "false"
    assert count(window, "integration.runs") == source_runs

    back = window_state(window)["smoke"]["rollback"]
    assert back["mode"] == "single"
    assert_smoke_passed(back["checks"])
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


def _named_statements_carried(window: Window) -> bool:
    """Whether the stand-in's PgBouncer carries named prepared statements across transactions
    (1.21+ with max_prepared_statements > 0), from its own admin console."""
    bouncer = window.dbaas.bouncer
    version = str(bouncer.show("VERSION")[0]["version"]).split()[-1]
    major, minor = (int(part) for part in version.split(".")[:2])
    prepared = int(bouncer.config().get("max_prepared_statements", "0"))
    return (major, minor) >= (1, 21) and prepared > 0


def test_phase_2_pool_burst_passes_one_prisma_setting_and_names_the_fix_for_the_other(
    window: Window,
) -> None:
    works = not _named_statements_carried(window)  # PgBouncer 1.18 here: pgbouncer=true works
    runs = {}
    try:
        for setting in (works, not works):
            window.prisma_pgbouncer = setting
            runs[setting] = window.run("primary_init", "-v")
    finally:
        window.prisma_pgbouncer = True
    good, bad = runs[works], runs[not works]
    assert good.returncode == 0, str(good)
    passed = next(ln for ln in good.output.splitlines() if "pool burst passed: " in ln)
    assert f"pgbouncer={str(works).lower()}:" in passed, passed
    pool = window.dbaas.bouncer.pool_size
    assert f"{2 * pool} clients through a pool of {pool}" in passed, passed
    assert (
        f"{2 * pool * 5} transactions, {2 * pool * 15} queries, {2 * pool * 15} answered" in passed
    )
    latency = re.search(r", 0 errors, p50 ([\d.]+) ms, p95 ([\d.]+) ms", passed)
    assert latency is not None, passed
    assert 0 < float(latency[1]) <= float(latency[2]), passed

    assert bad.returncode != 0, str(bad)
    failed = next(ln for ln in bad.output.splitlines() if "pool burst failed (" in ln)
    assert f"pgbouncer={str(not works).lower()}:" in failed, failed
    assert "26000" in failed or "42P05" in failed, failed
    assert f"pulumi config set handled-infra:prismaPgbouncer {str(works).lower()}" in failed
    assert "prisma/prisma#21635" in failed or "before 1.21" in failed, failed
    for run in (good, bad):
        assert_no_secret(window, run.output, "primary_init output")
    print(f"\nprimary_init with the pool burst: {good.seconds:.1f}s and {bad.seconds:.1f}s")
    print(passed)
    print(failed)


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

    # the checklist's order: the 48-hour watch of this window first, over with no failed check
    unwatched = window.run("finalize", HANDLED_CONFIRM_FINALIZE="yes")
    assert unwatched.returncode != 0, str(unwatched)
    assert f"the 48-hour watch never ran for window {state['window']}" in unwatched.output
    assert not changed(unwatched), str(unwatched)
    installed = window.run("watch", HANDLED_WATCH_SCHEDULE="[[1, 1]]")  # checks at 0 and 1 s
    assert installed.returncode == 0, str(installed)
    line = crontab_line(window)
    assert line is not None
    tick(window, line)
    early = window.run("finalize", HANDLED_CONFIRM_FINALIZE="yes")
    assert "the 48-hour watch is not over: 1 of 2 checks done" in early.output, str(early)
    time.sleep(1.1)
    tick(window, line)
    assert "the watch is over: 2 checks since " in watch_log(window)

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
