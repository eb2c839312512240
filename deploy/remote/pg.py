"""The VPS side's database tools: ``psql`` and ``dbsplit``, with settings in the environment.

Every connection goes to the child as libpq environment variables (``PGHOST``, ``PGPASSWORD``,
...), never as arguments; SQL that would carry a password is sent on stdin, and only as a SCRAM
verifier. Every ``psql`` is bounded: a connect timeout, statement and lock timeouts on the
server, and a timeout on the child itself, so a dead network or a held lock fails the step with
one line instead of hanging the window.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deploy.remote.runtime import Failure, base_env, home_path, last_line, run, say, scrub, stream

#: What every direct psql connection gets (PgBouncer refuses ``options``: pools get only the
#: connect timeout).
BOUNDED = {
    "PGCONNECT_TIMEOUT": "10",
    "PGOPTIONS": "-c statement_timeout=120000 -c lock_timeout=30000",
}
CONNECT_ONLY = {"PGCONNECT_TIMEOUT": "10"}


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """``value`` as a quoted SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def psql(
    conn: Mapping[str, str],
    sql: str,
    *,
    what: str,
    dbname: str | None = None,
    timeout: float = 120,
    pooled: bool = False,
) -> list[str]:
    """Run one SQL text with ``psql`` (settings in the environment); return its output rows.

    ``pooled``: the connection goes through PgBouncer, which takes no server options."""
    env = {**(CONNECT_ONLY if pooled else BOUNDED), **conn}
    if dbname is not None:
        env["PGDATABASE"] = dbname
    out = run(
        ["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env=env,
        what=what,
        echo=False,
        timeout=timeout,
    )
    return [line for line in out.splitlines() if line.strip()]


def psql_stdin(conn: Mapping[str, str], sql: str, *, what: str) -> None:
    """Run SQL text given on psql's stdin (for statements that must not be in argv)."""
    proc = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"],
        input=sql,
        env={**base_env(), **BOUNDED, **conn},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        raise Failure(f"{what} failed: {last_line(proc)}")


def try_psql(
    conn: Mapping[str, str], sql: str, what: str, *, pooled: bool = False
) -> tuple[bool, str]:
    """``(True, first row)`` or ``(False, the one-line reason)``."""
    try:
        rows = psql(conn, sql, what=what, pooled=pooled)
    except Failure as exc:
        return False, str(exc)
    return True, rows[0] if rows else ""


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 secret PostgreSQL stores: the password itself never reaches the server."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


# ----- dbsplit, from its virtualenv -------------------------------------------------------------


def dbsplit_argv(venv: str, args: Sequence[str]) -> list[str]:
    return [str(home_path(venv) / "bin" / "dbsplit"), *args]


def dbsplit(venv: str, args: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """Run ``dbsplit <args>`` (URLs in ``env``), relaying its lines; raise on failure."""
    say("dbsplit " + " ".join(args))
    return stream(dbsplit_argv(venv, args), env=dict(env), cwd=None, what="dbsplit " + args[0])


def dbsplit_json(
    venv: str, args: Sequence[str], env: Mapping[str, str], *, ok_codes: tuple[int, ...] = (0,)
) -> tuple[int, dict[str, Any]]:
    """Run ``dbsplit <args> --json`` and return its exit code and JSON (stdout)."""
    try:
        proc = subprocess.run(
            [*dbsplit_argv(venv, args), "--json"],
            env={**base_env(), **env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=3600,
        )
    except FileNotFoundError:
        raise Failure(f"dbsplit is not installed in {venv}: run the window's preflight") from None
    if proc.returncode not in ok_codes:
        raise Failure(f"dbsplit {args[0]} failed (exit {proc.returncode}): {last_line(proc)}")
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise Failure(f"dbsplit {args[0]} printed no JSON: {scrub(proc.stdout[-200:])}") from None
    if not isinstance(data, dict):
        raise Failure(f"dbsplit {args[0]} printed JSON that is not an object")
    return proc.returncode, data


def report_path(state_dir: Path, name: str) -> Path:
    """Where a dbsplit JSON report of this window goes on the VPS."""
    return state_dir / "reports" / name


def read_report(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
