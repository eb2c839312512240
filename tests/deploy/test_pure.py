"""The deploy's pure parts, as data: the ``.env`` merge, URL shaping, the cut-over gate, what a
remote action ships with, how the VPS side answers a bad request, the smoke checks (parsing,
JSON conditions, scrubbing) and the health contract.

Each case is one row: what goes in, what must come out (pyinfra's own tests are written so).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api import output

from dbsplit.errors import UsageError
from dbsplit.progress import Throughput
from dbsplit.urls import (
    SPLIT_ENV_HEADER,
    env_line,
    env_value,
    merged_env,
    split_env_values,
    with_ca_path,
)
from deploy.progress import ProgressLine, Relay, listen
from deploy.remote import BOOTSTRAP, Request, closure, smoke
from deploy.remote.apps import healthy
from deploy.steps import app_remote, finalize_remote, lock_remote, split_remote, verify_remote

STEPS = Path(__file__).resolve().parents[2] / "deploy" / "steps"

# ----- the .env ---------------------------------------------------------------------------------

MERGES: list[tuple[str, str, dict[str, str], str]] = [
    (
        "keys replaced in place, every other line kept",
        "# app\nDATABASE_URL=x\nSPLIT_DB_MODE=false\nPORT=3001\n",
        {"SPLIT_DB_MODE": "true"},
        '# app\nDATABASE_URL=x\nSPLIT_DB_MODE="true"\nPORT=3001\n',
    ),
    (
        "missing keys appended under the header",
        "PORT=3001",
        {"AUTH_SECRET": "s3cr3t"},
        f'PORT=3001\n\n{SPLIT_ENV_HEADER}\nAUTH_SECRET="s3cr3t"\n',
    ),
    (
        "a later duplicate of a set key is dropped",
        "A=1\nexport A=2\nB=3\n",
        {"A": "new"},
        'A="new"\nB=3\n',
    ),
    (
        "an empty file gets the header and the keys",
        "",
        {"A": "1", "B": "2"},
        f'{SPLIT_ENV_HEADER}\nA="1"\nB="2"\n',
    ),
]


@pytest.mark.parametrize(
    ("base", "values", "expected"), [c[1:] for c in MERGES], ids=[c[0] for c in MERGES]
)
def test_merged_env(base: str, values: dict[str, str], expected: str) -> None:
    assert merged_env(base, values) == expected


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("plain", 'K="plain"'),
        ('a"b', "K='a\"b'"),
        ("a#b", "K='a#b'"),
        ("a\\b", "K='a\\b'"),
        ("a'b\"c", 'K="a\'b\\"c"'),
        (
            "postgresql://u:p%40@h:1/d?sslmode=verify-full",
            'K="postgresql://u:p%40@h:1/d?sslmode=verify-full"',
        ),
    ],
)
def test_env_line_reads_back_as_the_value(value: str, line: str) -> None:
    assert env_line("K", value) == line


def test_env_line_refuses_a_line_break() -> None:
    with pytest.raises(UsageError, match="value of K contains a line break"):
        env_line("K", "a\nb")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('export SPLIT_DB_MODE="true"\n', "true"),
        ("SPLIT_DB_MODE=false\nSPLIT_DB_MODE=true\n", "false"),
        ("# SPLIT_DB_MODE=true\n", None),
        ("SPLIT_DB_MODE='true'", "true"),
    ],
)
def test_env_value(text: str, value: str | None) -> None:
    assert env_value(text, "SPLIT_DB_MODE") == value


# ----- URL shaping --------------------------------------------------------------------------------

SHAPES: list[tuple[str, str, bool, bool | None, str]] = [
    (
        "a pool URL gets verify-full against the CA and pgbouncer=true, its options kept",
        "postgresql://app:p%40ss@db.example.com:25061/handled-pool?sslmode=require&connect_timeout=5",
        True,
        True,
        "postgresql://app:p%40ss@db.example.com:25061/handled-pool?connect_timeout=5"
        "&sslmode=verify-full&sslrootcert=%2Fca.crt&pgbouncer=true",
    ),
    (
        "prismaPgbouncer false: the pool URL says pgbouncer=false, whatever it said before",
        "postgresql://app:p%40ss@db.example.com:25061/handled-pool?pgbouncer=true&connect_timeout=5",
        True,
        False,
        "postgresql://app:p%40ss@db.example.com:25061/handled-pool?connect_timeout=5"
        "&sslmode=verify-full&sslrootcert=%2Fca.crt&pgbouncer=false",
    ),
    (
        "prismaPgbouncer true turns a pgbouncer=false back on",
        "postgresql://app:x@db.example.com:25061/handled-pool?pgbouncer=false",
        True,
        True,
        "postgresql://app:x@db.example.com:25061/handled-pool"
        "?sslmode=verify-full&sslrootcert=%2Fca.crt&pgbouncer=true",
    ),
    (
        "a direct URL loses pgbouncer and Prisma's sslcert",
        "postgresql://app:x@db.example.com:25060/handled?pgbouncer=true&sslcert=/old.crt",
        False,
        None,
        "postgresql://app:x@db.example.com:25060/handled?sslmode=verify-full&sslrootcert=%2Fca.crt",
    ),
    (
        "a URL without port gets DigitalOcean's",
        "postgresql://app:x@db.example.com/handled",
        False,
        None,
        "postgresql://app:x@db.example.com:25060/handled?sslmode=verify-full&sslrootcert=%2Fca.crt",
    ),
]


@pytest.mark.parametrize(
    ("url", "pool", "pgbouncer", "expected"), [c[1:] for c in SHAPES], ids=[c[0] for c in SHAPES]
)
def test_with_ca_path(url: str, pool: bool, pgbouncer: bool | None, expected: str) -> None:
    assert with_ca_path(url, "/ca.crt", pool=pool, what="URL", pgbouncer=pgbouncer) == expected


@pytest.mark.parametrize("pgbouncer", [True, False])
def test_the_env_carries_the_stack_pgbouncer_setting(pgbouncer: bool) -> None:
    pool = with_ca_path(
        "postgresql://app:x@db.example.com:25061/handled-pool",
        "/ca.crt",
        pool=True,
        what="PRIMARY_DATABASE_URL",
        pgbouncer=pgbouncer,
    )
    values = split_env_values(
        primary_pool_url=pool, primary_direct_url="d", data_url="x", auth_secret="s"
    )
    text = merged_env("PRIMARY_DATABASE_URL=old\n", values)
    expected = f"pgbouncer={str(pgbouncer).lower()}"
    assert env_value(text, "PRIMARY_DATABASE_URL") == (
        "postgresql://app:x@db.example.com:25061/handled-pool"
        f"?sslmode=verify-full&sslrootcert=%2Fca.crt&{expected}"
    )


def test_a_pool_url_needs_the_pgbouncer_setting() -> None:
    with pytest.raises(UsageError, match="a pooled URL needs the pgbouncer setting"):
        with_ca_path("postgresql://app:x@db.example.com:25061/p", "/ca.crt", pool=True, what="URL")


def test_with_ca_path_refuses_a_url_without_user() -> None:
    with pytest.raises(UsageError, match="must name a user, a host and a database"):
        with_ca_path("postgresql://db.example.com/handled", "/ca.crt", pool=False, what="URL")


# ----- the cut-over gate --------------------------------------------------------------------------

P1, P2 = {"digest": "a", "writes": 1}, {"digest": "b", "writes": 2}
FROZEN = {"ok": True, "frozen": True, "problems": [], "position": P1}
DONE = {"split": "done", "source_mark": P1, "position": P2}
VERIFIED = {
    "ok": True,
    "run": "r1",
    "at": "t",
    "positions": {"source": P1, "primary": P2, "data": P2},
}

GATES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], str]] = [
    ("everything holds", FROZEN, DONE, {"verify": VERIFIED}, ""),
    (
        "the source is not frozen",
        {"ok": False, "frozen": False, "problems": ["the database is not frozen"], "position": P1},
        DONE,
        {"verify": VERIFIED},
        "the source is not frozen safely: the database is not frozen",
    ),
    (
        "the copy is of another source position",
        {**FROZEN, "position": P2},
        DONE,
        {"verify": {**VERIFIED, "positions": {"source": P2, "primary": P2, "data": P2}}},
        "the source changed since the copy's snapshot",
    ),
    ("no verify yet", FROZEN, DONE, {}, "no verify has passed"),
    (
        "the verify found differences",
        FROZEN,
        DONE,
        {"verify": {**VERIFIED, "ok": False}},
        "the last verify found differences",
    ),
    (
        "a verify of an earlier run",
        FROZEN,
        DONE,
        {"verify": {**VERIFIED, "run": "r0"}},
        "taken by an earlier run",
    ),
    (
        "a target changed since verify",
        FROZEN,
        {**DONE, "position": P1},
        {"verify": VERIFIED},
        "primary, data changed since verify passed",
    ),
    (
        "the copy has not finished",
        FROZEN,
        {**DONE, "split": "started"},
        {"verify": VERIFIED},
        "the copy has not finished on both targets",
    ),
]


@pytest.mark.parametrize(
    ("source", "target", "state", "reason"),
    [c[1:] for c in GATES],
    ids=[c[0] for c in GATES],
)
def test_the_cut_over_gate(
    source: dict[str, Any], target: dict[str, Any], state: dict[str, Any], reason: str
) -> None:
    found = split_remote.SplitStatus(source=source, primary=target, data=target)
    gate = verify_remote.judge(found, state, run="r1")
    assert gate.passed is (reason == ""), gate.reasons
    if reason:
        assert any(reason in r for r in gate.reasons), gate.reasons


# ----- what a remote action ships with, and how it answers ---------------------------------------


def test_every_remote_action_ships_only_the_standard_library_and_this_repository() -> None:
    remotes = sorted(p.stem for p in STEPS.glob("*_remote.py"))
    assert len(remotes) >= 12
    for name in remotes:
        modules = dict(closure(f"deploy.steps.{name}"))
        assert "deploy.remote.runtime" in modules
        assert not any(m.startswith("pyinfra") for m in modules)
        # a clean interpreter with only those modules (and no site-packages) imports it
        probe = (
            "import json,sys,types\nmods=json.loads(sys.stdin.read())\n"
            "for n,s in mods:\n p=n.split('.')\n for i in range(1,len(p)+1):\n"
            "  q='.'.join(p[:i])\n  if q not in sys.modules:\n"
            "   m=types.ModuleType(q);m.__path__=[];sys.modules[q]=m\n"
            "   if i>1:setattr(sys.modules['.'.join(p[:i-1])],p[i-1],m)\n"
            " exec(compile(s,n+'.py','exec'),sys.modules[n].__dict__)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-I", "-S", "-c", probe],
            input=json.dumps(list(modules.items())),
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, f"{name}: {proc.stderr[-500:]}"


def _remote(func: Any, args: Any, *, tmp: Path) -> subprocess.CompletedProcess[str]:
    request = Request(func, args, secrets={}, mask=[], run="r", runbook="test", state_dir=str(tmp))
    return subprocess.run(
        ["python3", "-c", BOOTSTRAP, request.action],
        input=request.readlines()[0],
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_fact_answers_one_json_line_with_the_systems_python(tmp_path: Path) -> None:
    proc = _remote(lock_remote.held, lock_remote.LockQuery(), tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == {
        "other": {},
        "window": None,
        "finalized": {},
    }


def test_a_failing_fact_says_why_and_an_action_fails_with_one_line(tmp_path: Path) -> None:
    fact = _remote(verify_remote.gate, split_remote.DbsplitQuery("/nowhere"), tmp=tmp_path)
    assert fact.returncode == 0, "a fact that cannot be read says so in its JSON"
    assert json.loads(fact.stdout.splitlines()[-1]) == {
        "__error__": "the request carries no dbsplit_env"
    }
    action = _remote(
        split_remote.migrate, split_remote.Migrate(venv="/nowhere", jobs=1), tmp=tmp_path
    )
    assert action.returncode == 1
    lines = action.stderr.strip().splitlines()
    assert len(lines) == 1, action.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in action.stderr


def test_a_request_never_shows_its_secrets() -> None:
    request = Request(
        lock_remote.held,
        lock_remote.LockQuery(),
        secrets={"password": "hunter2-hunter2"},
        mask=["hunter2-hunter2"],
        run="r",
        runbook="window",
        state_dir="x",
    )
    assert "hunter2" not in repr(request)
    assert "hunter2" not in str(request)
    assert repr(request) == "<lock.held request, secrets hidden>"


# ----- smoke checks and the health contract ----------------------------------------------------

GOOD = {"name": "n", "method": "get", "path": "/x"}
REFUSED: list[tuple[str, Any, str]] = [
    ("not a list", {"name": "n"}, "smoke_checks must be a list, not dict"),
    ("not a dict", ["GET /"], "smoke check 1 is not a dict: 'GET /'"),
    ("unknown key", [{**GOOD, "expected": 200}], "smoke check 1 ('n'): unknown key 'expected'"),
    ("no path", [{"name": "n", "method": "GET"}], "smoke check 1 ('n'): path must be"),
    ("relative path", [{**GOOD, "path": "x"}], "path must start with '/', not 'x'"),
    ("a name twice", [GOOD, GOOD], "smoke check 2 ('n'): the name is used twice"),
    ("bad method", [{**GOOD, "method": "FETCH"}], "unknown method 'FETCH'"),
    ("unknown app", [{**GOOD, "app": "admin"}], "app 'admin' is not in app_urls"),
    ("bad database", [{**GOOD, "database": "both!"}], "database must be one of primary, data"),
    ("status text", [{**GOOD, "expect": "200"}], "expect must be an HTTP status, not '200'"),
    ("status bool", [{**GOOD, "expect": True}], "expect must be an HTTP status, not True"),
    ("bad predicate", [{**GOOD, "json": {"a": {"like": 1}}}], "condition on 'a' must be"),
    ("two predicates", [{**GOOD, "json": {"a": {"gt": 1, "lt": 3}}}], "condition on 'a'"),
    ("unknown type", [{**GOOD, "json": {"a": {"type": "int"}}}], "unknown type 'int' for 'a'"),
    ("text not a list", [{**GOOD, "text": "ok"}], "text must be a list of strings"),
]


@pytest.mark.parametrize(("raw", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_a_bad_smoke_check_list_is_refused_with_one_line(raw: Any, message: str) -> None:
    with pytest.raises(smoke.SmokeError) as caught:
        smoke.parse_checks(raw)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_every_environments_smoke_checks_parse() -> None:
    from group_data import all as shared

    checks = smoke.parse_checks(shared.smoke_checks, tuple(shared.app_urls))
    assert {c.database for c in checks} >= {"primary", "data"}
    assert {c.app for c in checks} == {"api", "web"}, "both pm2 apps are checked over HTTP"
    assert [c.name for c in checks if c.session] == ["log in"]
    assert all(c.always for c in checks if c.method == "DELETE"), "clean-ups always run"


BODY = {"user": {"email": "a@b"}, "runs": [{"id": 7}, {"id": 8}], "n": 3, "flag": True, "z": 0}
CONDITIONS: list[tuple[str, Any, bool]] = [
    ("user.email", "a@b", True),
    ("user.email", "x@b", False),
    ("runs.1.id", 8, True),
    ("runs.-1.id", 8, True),
    ("runs.2.id", 8, False),
    ("runs", {"type": "list"}, True),
    ("user", {"type": "list"}, False),
    ("flag", {"type": "number"}, False),
    ("n", {"type": "number"}, True),
    ("n", {"gte": 3}, True),
    ("n", {"gt": 3}, False),
    ("flag", {"gte": 1}, False),
    ("user.email", {"gt": 1}, False),
    ("n", {"ne": 4}, True),
    ("user.email", {"contains": "@"}, True),
    ("n", {"contains": 3}, False),
    ("runs", {"nonempty": True}, True),
    ("z", {"nonempty": True}, False),
    ("missing", None, False),
    ("missing", {"ne": 1}, False),
]


@pytest.mark.parametrize(("path", "expected", "ok"), CONDITIONS)
def test_json_conditions(path: str, expected: Any, ok: bool) -> None:
    assert smoke.holds(smoke.lookup(BODY, path), expected)[0] is ok


def test_variables_fill_strings_and_keep_a_lone_values_type() -> None:
    variables = {"id": 12, "run": "ab"}
    body = {"roleId": "{id}", "name": "smoke-{run}", "list": ["{run}", 1], "n": None}
    assert smoke.fill(body, variables) == {
        "roleId": 12,
        "name": "smoke-ab",
        "list": ["ab", 1],
        "n": None,
    }
    assert smoke.fill("/u/{id}/{missing}", variables) == "/u/12/{missing}"
    assert smoke.needs(["/u/{id}", {"a": ["{b}"]}, 3]) == {"id", "b"}


def test_details_are_scrubbed_of_secrets() -> None:
    text = "login as smoke with pw-Secret-1 gave token tok.en.abc; pw-Secret-1%21"
    hidden = ["pw-Secret-1", "tok.en.abc", "abc", ""]
    assert smoke.scrubbed(text, hidden) == "login as smoke with *** gave token ***; ***%21"


JUDGED: list[tuple[str, dict[str, Any], int, Any, str, str]] = [
    ("status and error", {}, 403, {"error": "permission roles.manage required"}, "",
     "expected 201, got 403: permission roles.manage required"),
    ("a condition", {"json": {"n": {"gte": 4}}}, 201, BODY, "", "n is 3, expected gte 4"),
    ("a text", {"text": ["line,{run}"]}, 201, None, "line,x", "body lacks 'line,ab'"),
    ("nothing to save", {"save": {"id": "id"}}, 201, BODY, "", "no id to save as id"),
    ("no session token", {"session": "token"}, 201, BODY, "", "no token to save as session"),
    ("all held", {"json": {"user.email": "a@b"}, "text": ["ab"]}, 201, BODY, "ab", ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "status", "body", "text", "problem"),
    [c[1:] for c in JUDGED],
    ids=[c[0] for c in JUDGED],
)
def test_judge_a_response(
    extra: dict[str, Any], status: int, body: Any, text: str, problem: str
) -> None:
    check = smoke.Check(name="c", method="POST", path="/", expect=201, **extra)
    assert smoke.judge(check, status, body, text, {"run": "ab"}) == problem


FIXTURE_CONTRACT = {
    "ok": {"status": "ok"},
    "mode": "mode",
    "connected": {"primary": "databases.primary.connected", "data": "databases.data.connected"},
}
UP = {"connected": True, "database": "handled"}
HEALTH: list[tuple[str, dict[str, Any], dict[str, Any], bool, str]] = [
    ("both connected", FIXTURE_CONTRACT,
     {"status": "ok", "mode": "split",
      "databases": {"primary": UP, "data": {**UP, "database": "d"}}},
     True, "data d, primary handled"),
    ("wrong mode", FIXTURE_CONTRACT, {"status": "ok", "mode": "single"}, False,
     "API in single mode, expected split"),
    ("one down", FIXTURE_CONTRACT,
     {"status": "degraded", "mode": "split",
      "databases": {"primary": {"connected": False, "error": "refused"}, "data": UP}},
     False, "primary not connected (refused); status degraded"),
    ("flag missing", FIXTURE_CONTRACT, {"status": "ok", "mode": "split", "databases": {}},
     False, "data not connected (unknown error); primary not connected (unknown error)"),
    ("not answering", FIXTURE_CONTRACT,
     {"status": "down", "error": "refused", "_unreachable": True}, False,
     "API not answering (refused)"),
    ("another app's shape", {"ok": {"state": "UP"}, "mode": None, "connected": {"db": "checks.db"}},
     {"state": "UP", "checks": {"db": True}}, True, "db connected"),
    ("another app's shape, down", {"ok": {"state": "UP"}, "connected": {"db": "checks.db"}},
     {"state": "DOWN", "checks": {"db": True}}, False, "state DOWN"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("contract", "body", "ok", "why"), [c[1:] for c in HEALTH], ids=[c[0] for c in HEALTH]
)
def test_the_health_contract(
    contract: dict[str, Any], body: dict[str, Any], ok: bool, why: str
) -> None:
    assert healthy(body, "split", contract) == (ok, why)


def _phase(ok: bool, at: str) -> dict[str, Any]:
    return {
        "at": at,
        "mode": "split",
        "checks": [{"name": "a", "ok": True}, {"name": "b", "ok": ok}],
    }


SMOKE_DONE: list[tuple[str, dict[str, Any], str, bool]] = [
    ("no phase asked", {"window": "w"}, "", True),
    ("no window open", {}, "cutover", True),
    ("not run yet", {"window": "w", "restarted_at": "2026-01-01T00:00:00Z"}, "cutover", False),
    ("passed after the restart",
     {"window": "w", "restarted_at": "2026-01-01T00:00:00Z",
      "smoke": {"cutover": _phase(True, "2026-01-01T00:00:05Z")}}, "cutover", True),
    ("one check failed",
     {"window": "w", "restarted_at": "2026-01-01T00:00:00Z",
      "smoke": {"cutover": _phase(False, "2026-01-01T00:00:05Z")}}, "cutover", False),
    ("passed before a newer restart",
     {"window": "w", "restarted_at": "2026-01-01T01:00:00Z",
      "smoke": {"cutover": _phase(True, "2026-01-01T00:00:05Z")}}, "cutover", False),
    ("the rollback's, before the rollback",
     {"window": "w", "rolled_back": {"at": "2026-01-01T02:00:00Z"},
      "smoke": {"rollback": _phase(True, "2026-01-01T01:00:00Z")}}, "rollback", False),
    ("an empty list proves nothing",
     {"window": "w", "smoke": {"check": {"at": "z", "checks": []}}}, "check", False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("recorded", "phase", "done"), [c[1:] for c in SMOKE_DONE], ids=[c[0] for c in SMOKE_DONE]
)
def test_a_phase_smoke_run_counts_only_when_it_passed_since_the_phase_began(
    recorded: dict[str, Any], phase: str, done: bool
) -> None:
    assert app_remote.smoke_passed(recorded, phase) is done


# ----- progress lines, and the hook a notifier listens on ---------------------------------------

PROGRESS: list[tuple[str, float | None, float, float, str]] = [
    # step, total, done, seconds elapsed, the line
    (
        "backup",
        4 << 30,
        1 << 30,
        10.0,
        "progress backup: 1.00 GiB of 4.00 GiB (25%), 102.4 MiB/s, about 30s left",
    ),
    ("copy", None, 3 << 20, 2.0, "progress copy: 3.0 MiB, 1.5 MiB/s"),
    (
        "upload",
        1000,
        1000,
        1.0,
        "progress upload: 1000 B of 1000 B (100%), 1000 B/s, about 0s left",
    ),
]


@pytest.mark.parametrize(("step", "total", "done", "elapsed", "line"), PROGRESS)
def test_a_progress_line_says_done_rate_and_time_left(
    step: str, total: float | None, done: float, elapsed: float, line: str
) -> None:
    clock = iter([0.0, elapsed, elapsed])
    meter = Throughput(step, total, every=5, clock=lambda: next(clock))
    assert meter.report(done) == line


def test_progress_lines_are_rate_limited() -> None:
    now = [0.0]
    meter = Throughput("copy", 100, every=5, clock=lambda: now[0])
    now[0] = 1.0
    assert meter.report(10) is not None, "the first line comes at once"
    now[0] = 3.0
    assert meter.report(20) is None
    assert meter.report(20, force=True) is not None
    now[0] = 8.1
    assert meter.report(30) is not None


def test_the_notifier_hook_gets_each_steps_lines_at_its_interval() -> None:
    got: list[ProgressLine] = []
    relay = Relay(got.append, every=60)
    lines = [
        (0, "[vps] progress backup: 1.0 MiB of 9.0 MiB (11%), 1.0 MiB/s, about 8s left"),
        (10, "[vps] progress backup: 5.0 MiB of 9.0 MiB (55%), 0.5 MiB/s, about 8s left"),
        (12, "[vps]   dbsplit: [   1.0s] progress copy: 1.0 MiB of ~4.0 MiB (25%), 1 MiB/s"),
        (20, "[vps] progress backup: 9.0 MiB of 9.0 MiB (100%), 0.4 MiB/s, about 0s left"),
        (30, "[vps] pg_dump -Fc of handled (frozen) to /backups/x.dump"),
        (75, "[vps]   dbsplit: [  64.0s] progress copy: 3.0 MiB of ~4.0 MiB (75%), 1 MiB/s"),
        (76, "\x1b[1m[vps]\x1b[0m   dbsplit: [  65.0s] progress copy: 3.1 MiB, 1 MiB/s"),
    ]
    sent = [relay.feed(line, at) for at, line in lines]
    assert sent == [True, False, True, True, False, True, False]
    assert [(p.host, p.step, p.at) for p in got] == [
        ("vps", "backup", 0),
        ("vps", "copy", 12),
        ("vps", "backup", 20),
        ("vps", "copy", 75),
    ]
    assert got[2].finished
    assert got[1].text == "1.0 MiB of ~4.0 MiB (25%), 1 MiB/s"


def test_listen_sees_what_pyinfra_prints_and_stops() -> None:
    printed: list[str] = []
    got: list[ProgressLine] = []
    before = vars(output)["_echo"]
    output.set_echo(lambda message=None, **kwargs: printed.append(str(message)))
    try:
        stop = listen(got.append, every=0)
        output.echo("[vps] progress restore: 1.0 MiB of 2.0 MiB (50%), 1 MiB/s, about 1s left")
        output.echo("[vps] something else")
        stop()
        output.echo("[vps] progress restore: 2.0 MiB of 2.0 MiB (100%), 1 MiB/s, about 0s left")
    finally:
        output.set_echo(before)
    assert len(printed) == 3, "every line is still printed"
    assert [p.text for p in got] == ["1.0 MiB of 2.0 MiB (50%), 1 MiB/s, about 1s left"]


def test_a_finalized_window_closes_the_way_back_with_one_line_saying_where_and_how() -> None:
    record = {
        "at": "2026-12-03T05:00:00Z",
        "window": "20261201T040000Z-ab12",
        "archive": "handled_pre_split_20261201",
        "source_db": "handled",
        "dump": {"file": "/home/deploy/backups/handled-final-w.dump", "sha256": "f00d"},
        "uploaded": {"bucket": "handled-prod-pg-backups", "key": "pre-split/handled-final-w.dump"},
        "env_pre_split": {"file": "/home/deploy/handled/apps/backoffice/api/.env.pre-split"},
    }
    line = finalize_remote.closed("rollback", record)
    assert "\n" not in line
    assert line.startswith(
        "rollback refused, nothing was changed: window 20261201T040000Z-ab12 was finalized at"
        " 2026-12-03T05:00:00Z; the old database is archived as handled_pre_split_20261201"
    )
    for part in (
        "s3://handled-prod-pg-backups/pre-split/handled-final-w.dump (sha256 f00d",
        "on the VPS /home/deploy/backups/handled-final-w.dump",
        "rename the archive to handled",
        "dbsplit unfreeze",
        "put /home/deploy/handled/apps/backoffice/api/.env.pre-split back as .env",
    ):
        assert part in line, part
