"""The deploy's pure parts, as data: the ``.env`` merge, URL shaping, the cut-over gate, what a
remote action ships with, and how the VPS side answers a bad request.

Each case is one row: what goes in, what must come out (pyinfra's own tests are written so).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dbsplit.errors import UsageError
from dbsplit.urls import (
    SPLIT_ENV_HEADER,
    env_line,
    env_value,
    merged_env,
    split_env_values,
    with_ca_path,
)
from deploy.remote import BOOTSTRAP, Request, closure
from deploy.steps import lock_remote, split_remote, verify_remote

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
    assert json.loads(proc.stdout.splitlines()[-1]) == {"other": {}, "window": None}


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
