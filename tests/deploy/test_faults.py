"""Every way a window can go wrong, injected for real through pyinfra's CLI on the stand-ins.

One window per module; the scenarios run in order, each leaving the VPS in a state the next
one starts from:

1. two windows at once: the second is refused before it changes anything;
2. a target row changed after the copy: verify fails, the window stops before the cut-over,
   a re-run refuses again, and once the row is right the window cuts over; there the app's
   role loses INSERT on ``config.role_permissions`` on PRIMARY: the smoke check "manage
   roles" fails the health gate and the window rolls back by itself (the rollback's smoke
   checks pass on the old database);
3. after that automatic rollback from the cut-over: a rollback changes nothing; reset;
4. pyinfra killed after the freeze (a session opened before it is ended; the app's role,
   whatever it sets, cannot connect): rollback, healthy, the source writable;
5. pyinfra killed after the copy, then a superuser writes with the read-only default turned
   off: the re-run stops at the copy ("the source changed since"); rollback; reset;
6. pyinfra killed after the copy, then a hand unfreeze and writes: the re-run stops at the
   copy again; rollback;
7. pyinfra killed after the new ``.env``: rollback puts the old one back, healthy;
8. the backup's disk fills up during the dump (a real tmpfs): the window stops there, frozen,
   and the rollback brings the app back;
9. the health gate fails (a stale URL in the deploy user's environment): the window rolls back
   by itself, nothing lost.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from typing import Any

import psycopg
import pytest

from dbsplit.freeze import unfreeze
from dbsplit.urls import parse
from standins.host import http_json
from standins.window import BUCKET, ProcSampler, Run, Window
from tests.deploy.helpers import (
    SlackReceiver,
    assert_no_secret,
    assert_smoke_passed,
    changed,
    count,
    freeze_check,
    frozen,
    journal,
    sha,
    window_state,
)

pytestmark = pytest.mark.slow

TIMES: dict[str, float] = {}


def rollback_to_single(window: Window, label: str) -> Run:
    """``deploy/rollback.py``; the app must then be healthy on the old database, writable."""
    run = window.run("rollback")
    assert run.returncode == 0, str(run)
    TIMES[label] = run.seconds
    print(f"\nrollback {label}: {run.seconds:.1f}s")
    health = window.health()
    assert (health.get("status"), health.get("mode")) == ("ok", "single"), health
    assert not frozen(window)
    assert window.vps.app.read_env()["SPLIT_DB_MODE"] == "false"
    return run


def reset(window: Window) -> None:
    """``deploy/reset_split.py``: the split is dumped (on the VPS and in Spaces), then gone."""
    closed = window_state(window)["window"]
    run = window.run("reset_split", HANDLED_CONFIRM_RESET="yes")
    assert run.returncode == 0, str(run)
    folder = window.vps.ssh.home / "backups" / f"reset-{closed}"
    dumps = sorted(p.name for p in folder.glob("*.dump") if p.stat().st_size > 0)
    assert any(n.startswith("primary-") for n in dumps), dumps
    assert any(n.startswith(f"{window.vps.data_db}-") for n in dumps), dumps
    keys = {o["Key"] for o in window.s3.client().list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert {f"pre-split/rehearsal/reset-{closed}/{n}" for n in dumps} <= keys
    assert window_state(window) == {}, "the window is closed"
    with window.data_pg.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", [window.vps.data_db]
        ).fetchone()
    assert row == (0,)


def data_row(window: Window) -> tuple[Any, ...]:
    with window.data_pg.connect(window.vps.data_db) as conn:
        row = conn.execute("SELECT id, name FROM reference.carriers ORDER BY id LIMIT 1").fetchone()
    assert row is not None
    return row


def test_two_windows_at_once_the_second_is_refused(window: Window) -> None:
    second: dict[str, Run] = {}

    def start_second(line: str) -> None:
        if "Starting operation: 5. dbsplit migrate" in line and not second:
            second["run"] = window.run("production")

    first = window.run("production", on_line=start_second, kill_at="6. dbsplit verify")
    assert "run" in second, str(first)
    refused = second["run"]
    assert refused.returncode != 0, str(refused)
    assert "another window is running on this VPS" in refused.output, str(refused)
    assert "nothing was changed" in refused.output
    assert not changed(refused), str(refused)
    assert "[killed at: 6. dbsplit verify]" in first.output, str(first)
    assert window_state(window)["split"]["done_at"]


def test_a_target_row_changed_after_the_copy_stops_the_window(window: Window) -> None:
    env_before = sha(window.vps.app.env_path)
    row_id, name = data_row(window)
    with window.data_pg.connect(window.vps.data_db) as conn:
        conn.execute(
            "UPDATE reference.carriers SET name = 'changed behind dbsplit' WHERE id = %s", [row_id]
        )
    for attempt in ("first", "again"):
        run = window.run("production")
        assert run.returncode != 0, str(run)
        assert "verify found 1 difference(s)" in run.output, str(run)
        assert "reference.carriers differs" in run.output
        assert "The window stops here: nothing was switched" in run.output
        assert sha(window.vps.app.env_path) == env_before, attempt
        assert window_state(window)["verify"]["ok"] is False
        assert "cutover" not in window_state(window)
    with window.data_pg.connect(window.vps.data_db) as conn:
        conn.execute("UPDATE reference.carriers SET name = %s WHERE id = %s", [name, row_id])
    run = cut_over_with_manage_roles_broken(window)
    # (the first run's verify may have gone on after pyinfra was killed: only the last three)
    verified = [e for e in journal(window) if e["step"] == "verify" and e["event"] == "facts"]
    assert [e["verify"]["ok"] for e in verified[-3:]] == [False, False, True]
    assert len({e["run"] for e in verified[-3:]}) == 3, "each run verified anew"
    assert_no_secret(window, run.output, "the output")


def cut_over_with_manage_roles_broken(window: Window) -> Run:
    """The window cuts over, but once the app runs on the split its role loses INSERT on
    ``config.role_permissions`` on PRIMARY (a grant the split forgot): health is green, the
    smoke check "manage roles" fails the gate, and the window rolls back by itself; there,
    on the old database, every smoke check passes."""
    grant = "{} INSERT ON config.role_permissions {} " + window.dbaas.admin_user

    def break_manage_roles(line: str) -> None:
        if "Starting operation: 11. Health gate" in line:  # after the cut-over's restart
            with window.dbaas.server.connect(window.primary_db) as conn:
                conn.execute(grant.format("REVOKE", "FROM"))

    users = count(window, "config.users")
    try:
        run = window.run("production", on_line=break_manage_roles)
    finally:
        with window.dbaas.server.connect(window.primary_db) as conn:
            conn.execute(grant.format("GRANT", "TO"))
    assert run.returncode != 0, str(run)
    assert "health gate failed; rolled back" in run.output, str(run)
    assert "failed: manage roles (expected 201, got 500" in run.output, str(run)
    health = window.health()
    assert (health.get("status"), health.get("mode")) == ("ok", "single"), health
    assert not frozen(window)
    smoke = window_state(window)["smoke"]
    cutover = {c["name"]: c for c in smoke["cutover"]["checks"]}
    assert smoke["cutover"]["mode"] == "split"
    assert not cutover["manage roles"]["ok"], cutover
    assert cutover["create user"]["ok"], "the features before it worked"
    assert cutover["clean up: role"]["ok"], "what the smoke checks created is gone"
    assert smoke["rollback"]["mode"] == "single"
    assert_smoke_passed(smoke["rollback"]["checks"])
    assert count(window, "config.users") == users
    return run


def test_after_the_automatic_rollback_a_rollback_changes_nothing(window: Window) -> None:
    run = window.run("rollback")
    assert run.returncode == 0, str(run)
    assert not changed(run), str(run)
    assert window.health().get("mode") == "single"
    reset(window)


def test_killed_after_the_freeze_sessions_and_roles_cannot_write(window: Window) -> None:
    app_url = window.vps.source_url()
    before = psycopg.connect(app_url, autocommit=True)  # the app's role, opened before the freeze
    try:
        run = window.run("production", kill_at="4. Backup: pg_dump")
        assert "[killed at: 4. Backup: pg_dump]" in run.output, str(run)
        assert freeze_check(window).ok
        with pytest.raises(psycopg.OperationalError):
            before.execute(
                "INSERT INTO integration.runs (connector, started_at) VALUES ('late', now())"
            )
    finally:
        before.close()
    sneaky = parse(app_url).replace(params=(("options", "-c default_transaction_read_only=off"),))
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(sneaky.to_url(), connect_timeout=5)
    rollback_to_single(window, "after the freeze")
    with psycopg.connect(app_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO integration.runs (connector, started_at) VALUES ('after rollback', now())"
        )


def test_a_superuser_write_after_the_copy_is_caught(window: Window) -> None:
    run = window.run("production", kill_at="6. dbsplit verify")
    assert "[killed at: 6. dbsplit verify]" in run.output, str(run)
    env_before = sha(window.vps.app.env_path)
    runs_before = count(window, "integration.runs")
    with psycopg.connect(window.vps.source.url(window.vps.source_db), autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")
        conn.execute(
            "INSERT INTO integration.runs (connector, started_at) VALUES ('root, frozen', now())"
        )
    rerun = window.run("production")
    assert rerun.returncode != 0, str(rerun)
    assert "the source changed since PRIMARY and DATA were copied" in rerun.output, str(rerun)
    assert sha(window.vps.app.env_path) == env_before
    rollback_to_single(window, "after the copy")
    assert count(window, "integration.runs") == runs_before + 1, "the write is kept"
    reset(window)


def test_a_hand_unfreeze_and_writes_then_a_rerun_is_refused(window: Window) -> None:
    run = window.run("production", kill_at="6. dbsplit verify")
    assert "[killed at: 6. dbsplit verify]" in run.output, str(run)
    unfreeze(parse(window.vps.source.url(window.vps.source_db)))  # recovery by hand
    with psycopg.connect(window.vps.source_url(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO integration.runs (connector, started_at) VALUES ('by hand', now())"
        )
    rerun = window.run("production")
    assert rerun.returncode != 0, str(rerun)
    assert "the source changed since PRIMARY and DATA were copied" in rerun.output, str(rerun)
    assert window.vps.app.read_env()["SPLIT_DB_MODE"] == "false"
    rollback_to_single(window, "after a hand unfreeze")
    reset(window)


def test_killed_after_the_env_rollback_puts_it_back(window: Window) -> None:
    env_before = window.vps.app.env_path.read_bytes()
    run = window.run("production", kill_at="9. pnpm install")
    assert "[killed at: 9. pnpm install]" in run.output, str(run)
    assert window.vps.app.read_env()["SPLIT_DB_MODE"] == "true"
    rollback_to_single(window, "after the .env")
    assert window.vps.app.env_path.read_bytes() == env_before
    assert_no_secret(window, "\n".join(str(e) for e in journal(window)), "the journal")
    print("\nrollback times: " + ", ".join(f"{k} {v:.1f}s" for k, v in TIMES.items()))
    assert all(v < 30 for v in TIMES.values()), TIMES


def test_a_full_disk_during_the_backup_stops_the_window(window: Window) -> None:
    reset(window)  # the split went stale at the previous rollback
    backups = window.vps.ssh.home / "backups"
    entry = pwd.getpwnam(window.vps.ssh.user)
    options = f"size=64m,mode=0700,uid={entry.pw_uid},gid={entry.pw_gid}"
    saved = backups.with_name("backups.saved")
    backups.rename(saved)
    backups.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(backups)], check=True)
    try:

        def fill_the_disk(line: str) -> None:
            if "Starting operation: 4. Backup: pg_dump" in line:  # after the preflight passed
                fd = os.open(backups / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
                try:
                    os.posix_fallocate(fd, 0, shutil.disk_usage(backups).free - 8192)
                finally:
                    os.close(fd)

        run = window.run("production", on_line=fill_the_disk)
        assert run.returncode != 0, str(run)
        assert "No space left on device" in run.output, str(run)
        failed = [e for e in journal(window) if e["event"] == "failed"]
        assert failed[-1]["step"] == "backup", failed
        assert freeze_check(window).ok, "stopped frozen, after the freeze"
        assert window.vps.app.read_env()["SPLIT_DB_MODE"] == "false"
        (backups / "filler").unlink()
        rollback_to_single(window, "after a full disk")
    finally:
        subprocess.run(["umount", "-l", str(backups)], check=False)
        backups.rmdir()
        saved.rename(backups)


STALE = "postgresql://stale:stale@127.0.0.1:1/nowhere?pgbouncer=true"


def test_a_failed_health_gate_rolls_back_without_losing_rows(window: Window) -> None:
    """The deploy user's login environment exports a stale ``PRIMARY_DATABASE_URL``, which
    ``pm2 restart --update-env`` hands to the app, where it wins over the new ``.env`` (dotenv
    never overrides the environment): in split mode the API cannot reach PRIMARY."""
    api = window.vps.app.api_url
    for _ in range(3):
        assert http_json(f"{api}/api/integration-runs", method="POST", payload={}).status == 201
    runs_before = count(window, "integration.runs")
    users_before = count(window, "config.users")
    env_before = window.vps.app.env_path.read_bytes()
    profile = window.vps.ssh.home / ".handled-env.sh"
    shadowed = profile.read_bytes()
    with profile.open("a", encoding="utf-8") as handle:
        handle.write(f"export PRIMARY_DATABASE_URL='{STALE}'\n")
    slack = SlackReceiver()  # the communication plan, told of the gate and the rollback
    window.extra_outputs["notifySlackWebhook"] = slack.url
    try:
        with ProcSampler() as sampler:
            run = window.run("production", "-vv", HANDLED_HEALTH_TIMEOUT="10")
    finally:
        profile.write_bytes(shadowed)
        window.extra_outputs.pop("notifySlackWebhook")
        slack.stop()
    assert run.returncode != 0, str(run)
    assert "health gate failed; rolled back" in run.output, str(run)
    assert "primary not connected" in run.output, str(run)
    print(f"\nwindow with failed gate and automatic rollback: {run.seconds:.1f}s")
    health = window.health()
    assert (health.get("status"), health.get("mode")) == ("ok", "single"), health
    assert not frozen(window)
    assert window.vps.app.env_path.read_bytes() == env_before
    assert count(window, "integration.runs") == runs_before
    assert count(window, "config.users") == users_before
    assert http_json(f"{api}/api/integration-runs", method="POST", payload={}).status == 201
    assert_no_secret(window, run.output, "the output")
    assert_no_secret(window, "\n".join(sampler.seen), "a command line")
    for log in window.logs():
        assert_no_secret(window, log.read_text(errors="replace"), f"log {log}")

    posted = [t.removeprefix("[rehearsal] ") for t in slack.messages]
    for text in posted:
        assert_no_secret(window, text, "a notification")
        assert "stale:stale@" not in text
    # the long steps' progress messages come between the others (test_window.py checks them)
    said = [t for t in posted if not t.startswith("progress ")]
    gate = next(i for i, t in enumerate(said) if t.startswith("FAILED: "))
    assert said[0].startswith("window started on rehearsal-vps"), said
    assert all(t.startswith("done: ") for t in said[1:gate]), said
    assert said[gate].startswith("FAILED: 11. Health gate: PRIMARY and DATA connected"), said
    assert "primary not connected" in said[gate], said
    assert said[gate + 1].startswith("rollback started on rehearsal-vps after: 11. Health gate")
    rollback = said[gate + 2 : -3]
    assert rollback, said
    assert all(t.startswith("done: 11. Rollback: ") for t in rollback), said
    assert said[-3].startswith("FAILED: 11. Deploy failed: health gate after "), said
    assert said[-2].startswith("rollback finished on rehearsal-vps"), said
    assert said[-1].startswith("window stopped on rehearsal-vps after "), said
    assert "11. Health gate" in said[-1]
