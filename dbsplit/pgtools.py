"""Running ``pg_dump`` and ``pg_restore`` without ever putting a password on a command line.

The connection goes to the child as a libpq connection string *without* the password
(``--dbname=host=... user=... sslmode=...``); the password travels in the child's environment
(``PGPASSWORD``), which other users cannot read. Inherited ``PG*`` variables are removed so only
the URL decides where the child connects.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import make_conninfo

from dbsplit import watchdog
from dbsplit.connect import libpq_params
from dbsplit.errors import SplitError, UsageError
from dbsplit.urls import PgUrl, redact


@dataclass(frozen=True)
class Tool:
    """A PostgreSQL client program and its major version."""

    path: str
    major: int


def find_tool(name: str, explicit: str | None = None, *, near: str | None = None) -> Tool:
    """Find ``name`` (``pg_dump``, ``pg_restore``): ``explicit`` path, else next to ``near``
    (the chosen ``pg_dump``), else on PATH. Raises :class:`UsageError` when missing."""
    candidates: list[str] = []
    if explicit:
        candidates.append(explicit)
    else:
        if near:
            candidates.append(str(Path(near).with_name(name)))
        found = shutil.which(name)
        if found:
            candidates.append(found)
    for path in candidates:
        if Path(path).is_file() and os.access(path, os.X_OK):
            return Tool(path, _major(path))
    where = explicit or "PATH"
    raise UsageError(
        f"cannot find {name} at {where}: install the PostgreSQL client or pass --pg-dump"
    )


def _major(path: str) -> int:
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise UsageError(f"cannot run {path!r} --version: {exc}") from None
    m = re.search(r"(\d+)(?:\.\d+)?", out)
    if not m:
        raise UsageError(f"cannot read the version of {path!r}: {out.strip()!r}")
    return int(m.group(1))


def child_args(url: PgUrl) -> tuple[str, dict[str, str]]:
    """``(--dbname value, environment)`` for a child that connects to ``url``.

    The ``--dbname`` value holds no password, and the same keepalives, ``tcp_user_timeout``
    and ``connect_timeout`` as dbsplit's own connections (:mod:`dbsplit.connect`); the
    environment holds ``PGPASSWORD``.
    """
    params = libpq_params(url)
    password = params.pop("password", None)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    if password is not None:
        env["PGPASSWORD"] = password
    return make_conninfo("", **params), env


def run(
    argv: Sequence[str], env: dict[str, str], *, what: str, server: PgUrl | None = None
) -> bytes:
    """Run a client program; raise :class:`SplitError` with its (redacted) error on failure.

    A child working against ``server`` is killed when the watchdog loses that server
    (:class:`~dbsplit.errors.LostError` then).
    """
    for arg in argv:
        assert "PGPASSWORD" not in arg
    try:
        proc = subprocess.Popen(
            list(argv),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        raise SplitError(f"cannot run {argv[0]!r} for {what}: {exc}") from None
    watched = watchdog.child(proc, server.redacted()) if server else contextlib.nullcontext()
    with proc, watched:
        stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        err = redact(stderr.decode("utf-8", "replace")).strip().splitlines()
        line = next((ln for ln in err if "error" in ln.lower()), err[0] if err else "")
        raise SplitError(
            f"{Path(argv[0]).name} failed for {what} (exit {proc.returncode}): {line.strip()}"
        )
    return stdout
