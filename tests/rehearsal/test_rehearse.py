"""`make rehearse` end to end at a small scale, through its real entry point; `--keep` keeps.

One rehearsal (16 MB) for the module: `python -m rehearsal --scale-mb 16 --keep --out <tmp>` as a
subprocess, waited for until it has exited (its output pipe closed: no kept server holds it).
The tests, in this separate process, then read its report (`result.json`, the page in Debian's
headless Chromium) and use the kept stand-ins with the commands it printed, run exactly as
printed in a fresh shell: ssh, curl, psql (the source, and the DBaaS over TLS from the VPS's
namespace), pyinfra's `deploy/check.py`. Last, its printed stop command must stop everything
the ledger lists; the fixture's teardown runs `--stop` as well, so a failed test leaves nothing
running.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from rehearsal import ledger
from standins.cleanup import Leftover
from standins.sshd import DEFAULT_USER
from standins.window import REPO
from tests.rehearsal.test_report_browser import CHROMIUM_FLAGS
from tests.standins_net.test_detach import alive, deploy_user_locked, user_pids

pytestmark = pytest.mark.slow

PYTHON = REPO / ".venv" / "bin" / "python"
FRESH_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": "/root"}
"""A fresh root shell's environment: nothing of this process's (no URL, no key)."""
LABELS = (
    "env",
    "ssh",
    "health",
    "psql",
    "DBaaS",
    "reset",
    "init",
    "window",
    "check",
    "rollback",
    "stop",
)


@dataclass(frozen=True)
class Run:
    """The exited rehearsal: what it printed, its report, its commands, the ledger it left."""

    returncode: int
    output: str
    report: Path
    result: dict[str, Any]
    commands: dict[str, str]
    leftovers: list[Leftover]


def _commands(output: str) -> dict[str, str]:
    """`label: command` lines after the "stand-ins kept running" line."""
    _, sep, kept = output.partition("stand-ins kept running")
    assert sep, "the rehearsal did not say it kept the stand-ins"
    return dict(re.findall(r"^  ([A-Za-z]+): +(\S.*)$", kept, flags=re.MULTILINE))


def _stop() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PYTHON), "-m", "rehearsal", "--stop"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def shell(command: str, *, stdin: str | None = None, timeout: float = 120) -> str:
    """Run `command` as printed, in a fresh bash (outside the repo); stdout+stderr; must pass."""
    proc = subprocess.run(
        ["bash", "-c", command],
        cwd="/",
        env=FRESH_ENV,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"`{command}` exited {proc.returncode}:\n{text}"
    return text


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    out = tmp_path_factory.mktemp("rehearsal")
    try:
        proc = subprocess.run(
            [str(PYTHON), "-m", "rehearsal", "--scale-mb", "16", "--keep", "--out", str(out)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        output = proc.stdout + proc.stderr
        print(output)
        reports = re.findall(r"^report: (.+)$", output, flags=re.MULTILINE)
        assert reports, f"no report line in the output:\n{output[-3000:]}"
        report = Path(reports[-1])
        result = json.loads((report.parent / "result.json").read_text())
        leftovers = [Leftover.from_json(item) for item in ledger.read().get("leftovers", [])]
        yield Run(proc.returncode, output, report, result, _commands(output), leftovers)
    finally:
        stopped = _stop()
        print(stopped.stdout, stopped.stderr)
        if stopped.returncode != 0:
            ledger.sweep()


def test_the_rehearsal_passes_and_prints_its_numbers(run: Run) -> None:
    steps = run.result["steps"]
    failed = [f"{s['name']}: {s['detail']}" for s in steps if not s["ok"]]
    assert run.returncode == 0, f"failed steps: {failed}; numbers {run.result['numbers']}"
    assert "rehearsal PASSED" in run.output
    numbers = run.result["numbers"]
    for key in ("write_freeze_s", "window_s", "migration_s", "rollback_s", "rerun_s", "restore_s"):
        assert key in numbers, f"{key} missing from {numbers}"
    assert 0 < numbers["write_freeze_s"] <= numbers["window_s"] < 120
    assert numbers["rollback_s"] < 30
    assert numbers["rerun_s"] < 20
    assert 0 < numbers["success_rate_pct"] < 100, "the window must show failed requests"
    drills = run.result["rollback_from_each_step"]
    assert set(drills) == {"after the freeze", "after the copy", "after the new .env"}, drills
    assert all(0 < seconds < 30 for seconds in drills.values()), drills
    names = [s["name"] for s in steps]
    for name in (
        "single-DB health",
        "PRIMARY initialisation",
        "production deploy",
        "post-deployment validation (check.py)",
        "rollback refused: the app wrote in split mode",
        "rollback drill (rollback.py)",
        "reset the stale split (reset_split.py)",
        "redeploy (production.py)",
        "re-run with nothing to change",
        "restore drill from Spaces (restore.py)",
        "window killed after the freeze",
        "window killed after the copy",
        "window killed after the new .env",
    ):
        assert name in names
    assert any(s["phase"] == "operation" for s in steps)
    evidence = run.result["evidence"]
    unproven = {k: v["text"] for k, v in evidence.items() if not v["passed"]}
    assert not unproven, f"evidence that failed: {unproven}"
    for key in (  # each from facts this run read on the servers, the VPS and the deploys' output
        "pulumi.tests",
        "dbaas.version",
        "dbaas.tls",
        "dbaas.hba",
        "deploy.ca",
        "primary.reachable",
        "primary.schemas",
        "primary.database",
        "load.concurrency",
        "env.file",
        "app.single_health",
        "app.split_health",
        "app.migrations",
        "app.build",
        "app.deployed",
        "deploy.data_db",
        "deploy.backup",
        "deploy.backup_upload",
        "deploy.restart",
        "split.migrate",
        "split.verify",
        "verify.users",
        "verify.workspace",
        "check.pm2_logs",
        "check.pg_logs",
        "check.primary_connections",
        "check.data_connections",
        "load.errors",
        "load.latency",
        "rollback.split_writes",
        "rollback.dumped",
    ):
        assert key in evidence, f"{key} was not measured"
    checklist = run.result["checklist"]
    tally = run.result["checklist_counts"]
    assert tally == {s: sum(i["status"] == s for i in checklist) for s in tally}
    assert sum(tally.values()) == len(checklist) == 148
    assert tally["failed"] == 0
    assert f"checklist: {tally['proven']} proven" in run.output
    assert run.result["ok"] is True


def test_the_report_renders_in_chromium(run: Run, tmp_path: Path) -> None:
    binary = shutil.which("chromium")
    assert binary, "Debian's chromium is missing: `make test` installs it"
    dom = subprocess.run(
        [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            run.report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    ).stdout
    for part in ("numbers", "timeline", "requests", "tables", "checklist"):
        assert f'id="{part}"' in dom, f"section {part} missing"
    timeline = dom.split('id="timeline"', 1)[1].split("</section>", 1)[0]
    for window in ("write freeze: ", "maintenance window: ", "rollback: "):
        assert window in timeline, f"{window} not called out on the timeline"
    assert re.search(r'id="success-rate">\d+\.\d\d%<', dom)
    tables = run.result["tables"]
    assert {t["target"] for t in tables} == {"primary", "data"}
    assert all(t["matches"] for t in tables)
    for target in ("primary", "data"):
        assert f'data-target="{target}"' in dom
    for t in tables:
        assert t["table"] in dom
    assert "config.users" in dom
    assert dom.count('data-status="proven"><svg') == run.result["checklist_counts"]["proven"]
    assert "dbsplit verify:" in dom, "with their evidence"
    assert "Email to all users" in dom, "human items listed as such"
    assert dom.count('data-status="human"><svg') > 2
    markdown = (run.report.parent / "report.md").read_text()
    assert markdown.startswith("# Maintenance-window rehearsal")


def _secrets(env_file: Path) -> list[str]:
    """Every password and key in the env file and the service file it names."""
    values = {}
    for line in env_file.read_text().splitlines():
        word, assignment = shlex.split(line)
        assert word == "export"
        key, _, value = assignment.partition("=")
        values[key] = value
    found = [values["SPACES_SECRET_ACCESS_KEY"]]
    found += [p for v in values.values() if (p := urlsplit(v).password)]
    outputs = json.loads(Path(values["HANDLED_STACK_OUTPUTS"]).read_text())  # the stack's secrets
    found.append(outputs["authSecret"])
    found += [p for v in outputs.values() if (p := urlsplit(str(v)).password)]
    service = Path(values["PGSERVICEFILE"]).read_text()
    found += re.findall(r"^password=(.+)$", service, flags=re.MULTILINE)
    return found


def test_keep_prints_commands_and_no_secret(run: Run) -> None:
    assert set(LABELS) <= set(run.commands), run.commands
    env_file = Path(shlex.split(run.commands["env"])[0])
    assert env_file.stat().st_mode & 0o777 == 0o600
    outputs = re.findall(r"HANDLED_STACK_OUTPUTS=(\S+)", env_file.read_text())[0].strip("'")
    assert Path(outputs).stat().st_mode & 0o777 == 0o600
    secrets = _secrets(env_file)
    assert len(secrets) >= 10
    service = Path(re.findall(r"PGSERVICEFILE=(\S+)", env_file.read_text())[0].strip("'"))
    assert service.stat().st_mode & 0o777 == 0o600
    leaked = [s for s in secrets if len(s) >= 8 and s in run.output]
    assert not leaked, "a password or key was printed"


def test_the_printed_ssh_command_logs_in(run: Run) -> None:
    text = shell(run.commands["ssh"], stdin="echo kept-$(id -un); pm2 pid backoffice-api\n")
    lines = [ln for ln in text.splitlines() if not ln.startswith("Pseudo-terminal")]
    assert lines[0] == f"kept-{DEFAULT_USER}", text
    assert int(lines[1]) > 0, f"the app is not running under pm2: {text}"


def test_the_printed_health_command_answers(run: Run) -> None:
    body = json.loads(shell(run.commands["health"]))
    assert body["status"] == "ok", body
    assert all(db["connected"] for db in body["databases"].values()), body


def test_the_printed_psql_commands_reach_the_source_and_the_dbaas_over_tls(run: Run) -> None:
    source = shell(run.commands["psql"] + " -XAtc 'SELECT current_database(), current_user'")
    assert source.strip() == "handled|handled_user"
    query = (
        "SELECT current_setting('server_version_num')::int / 10000, ssl, current_database() "
        "FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    )
    version, ssl, database = shell(f'{run.commands["DBaaS"]} -XAtc "{query}"').strip().split("|")
    assert (version, ssl) == ("17", "t"), "PRIMARY is PostgreSQL 17 over TLS (verify-full)"
    assert database.startswith("handled_")
    assert "ip netns exec" in run.commands["DBaaS"]
    outside = subprocess.run(
        ["bash", "-c", run.commands["DBaaS"].split("ip netns exec")[0] + "psql service=primary"],
        env=FRESH_ENV,
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert outside.returncode != 0, "the DBaaS must admit only the VPS's address"
    assert "no pg_hba.conf entry" in outside.stderr


def _mode(run: Run) -> str:
    body = json.loads(shell(run.commands["health"]))
    assert body["status"] == "ok", body
    return str(body["mode"])


def test_the_printed_pyinfra_commands_work(run: Run) -> None:
    """From the state the drills left (said in the output: the app on the old database, the
    split stale), the printed rollback finds nothing to do, and the printed reset and init run
    (the window, check and rollback use the same environment; the deploy tests run them)."""
    assert _mode(run) == "single"
    assert "the app is ok in single mode now" in run.output
    text = shell(run.commands["rollback"], timeout=300)
    assert "No changes" in text, text
    shell(run.commands["reset"], timeout=300)
    data_admin = run.commands["psql"].replace("service=source", "service=data-admin")
    left = shell(
        f"{data_admin} -XAtc \"SELECT count(*) FROM pg_database WHERE datname = 'handled_data'\""
    )
    assert left.strip() == "0", "the reset dropped the stale DATA database"
    shell(run.commands["init"], timeout=300)
    assert _mode(run) == "single"


def test_stop_removes_everything_the_kept_world_left(run: Run) -> None:
    processes = [p for item in run.leftovers for p in item.processes]
    paths = [Path(p) for item in run.leftovers for p in item.paths]
    namespaces = [(i.namespace, i.link) for i in run.leftovers if i.namespace]
    # postgres x3 (source, DATA, DBaaS), PgBouncer, moto, sshd, the deploy user's lock keeper
    assert len(processes) == 7, run.leftovers
    assert all(alive(p.pid) for p in processes), "a kept server died"
    assert all(path.exists() for path in paths)
    assert len(namespaces) == 1
    name, link = namespaces[0]
    assert name in shell("ip netns list")
    app = user_pids(DEFAULT_USER)
    assert app, "pm2 and the app run before --stop"
    assert deploy_user_locked(DEFAULT_USER)

    lines = shell(run.commands["stop"]).splitlines()

    assert not [p.pid for p in processes if alive(p.pid)]
    assert not [path for path in paths if path.exists()]
    assert name not in shell("ip netns list")
    assert f"{link}:" not in shell("ip -o link")
    # (another session waiting for the deploy user may take it, and its lock, at once)
    assert not [pid for pid in app if alive(pid)], "pm2 or the app outlived --stop"
    assert not ledger.LEDGER.exists()
    assert sum(line.startswith("stopped ") for line in lines) == 1 + len(processes), lines
    assert sum(line.startswith("removed /") for line in lines) == len(paths), lines
    assert f"removed network namespace {name} and its veth pair" in lines
    again = shell(run.commands["stop"])
    assert again.strip() == "nothing to stop: no stand-ins kept or left over by a rehearsal"
