"""The one place the deploy reads what lives outside the repository: the stack's outputs and
the secrets.

**Stack outputs** are what ``pulumi up`` exported (``infra/stack.py``): read once per run with
``pulumi stack output --json --show-secrets`` (``outputs_source = "pulumi"``), or from a file
holding exactly that JSON (``outputs_source = "file"``, the path in ``stack_outputs_file`` or
``HANDLED_STACK_OUTPUTS``; the rehearsal's stand-ins write one). That adapter is the only
difference between the two: the values the stack knows (the CA's path on the VPS, the backup
bucket, its endpoint and region, the pool's size, Prisma's ``pgbouncer=``) are never repeated in
``group_data/``.

**Secrets**: environment variables first, then the outputs.

=============================  ========================  ========================================
environment variable           stack output              what
=============================  ========================  ========================================
``OLD_DATABASE_URL``           -                         the app's current URL of ``handled``
``SOURCE_ADMIN_URL``           -                         a superuser of the source's server
                                                         (freeze, backup, copy, restore); when
                                                         unset, ``DATA_ADMIN_URL`` with the
                                                         database set to ``source_db`` (on the
                                                         VPS both live in one server)
``PRIMARY_DIRECT_URL``         ``primaryDirectUrl``      PRIMARY, direct (migrations, dbsplit)
``PRIMARY_DATABASE_URL``       ``primaryDatabaseUrl``    PRIMARY through the PgBouncer pool
``PRIMARY_CA_CERT``            ``caCertificate``         the cluster's CA (PEM text)
``PRIMARY_CA_CERT_FILE``       -                         ... or a file holding it
``DATA_DATABASE_URL``          -                         ``handled_data`` as its owner role
``DATA_ADMIN_URL``             -                         a superuser on the VPS's DATA server
``AUTH_SECRET``                ``authSecret``            the app's session secret
``SPACES_ACCESS_KEY_ID``       -                         Spaces (S3) key for the backup bucket
``SPACES_SECRET_ACCESS_KEY``   -                         ... and its secret
``SMOKE_PASSWORD``             -                         the smoke checks' user's password
=============================  ========================  ========================================

Nothing here is ever stored in the repository, in ``host.data`` (pyinfra prints host data in
``debug-inventory`` and ``--debug-operations``) or in an operation's arguments (``--json``
prints them). Runbooks hand secrets to the VPS only inside a request on stdin.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pyinfra.api.exceptions import DeployError

from dbsplit.errors import UsageError
from dbsplit.urls import parse

SECRET_OUTPUTS: Mapping[str, str] = {
    "PRIMARY_DIRECT_URL": "primaryDirectUrl",
    "PRIMARY_DATABASE_URL": "primaryDatabaseUrl",
    "PRIMARY_CA_CERT": "caCertificate",
    "AUTH_SECRET": "authSecret",
}
"""Secrets that may come from the stack outputs, by environment variable name."""

URL_SECRETS = (
    "OLD_DATABASE_URL",
    "SOURCE_ADMIN_URL",
    "PRIMARY_DIRECT_URL",
    "PRIMARY_DATABASE_URL",
    "DATA_DATABASE_URL",
    "DATA_ADMIN_URL",
)
PLAIN_SECRETS = ("AUTH_SECRET", "SPACES_SECRET_ACCESS_KEY", "SMOKE_PASSWORD")


class StackOutputs:
    """The stack's outputs, read once, from the Pulumi CLI or from a file of the same JSON."""

    def __init__(self, source: str, stack: str | None, cwd: str | None, path: str | None) -> None:
        if source not in ("pulumi", "file"):
            raise DeployError(f"outputs_source must be 'pulumi' or 'file', not {source!r}")
        self._source = source
        self._stack = stack
        self._cwd = cwd
        self._path = path
        self._values: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"StackOutputs(source={self._source!r}, values hidden)"

    def _load(self) -> dict[str, Any]:
        if self._values is None:
            text = _pulumi_output(self._stack, self._cwd) if self._source == "pulumi" else None
            if text is None:
                text = _outputs_file(self._path)
            try:
                values = json.loads(text)
            except ValueError:
                raise DeployError("the stack outputs are not JSON") from None
            if not isinstance(values, dict):
                raise DeployError("the stack outputs are not a JSON object")
            self._values = values
        return self._values

    def get(self, name: str) -> Any:
        """Output ``name``, or None."""
        return self._load().get(name)

    def require(self, name: str) -> Any:
        """Output ``name``; a one-line :class:`DeployError` when the stack does not export it."""
        value = self.get(name)
        if value is None:
            raise DeployError(
                f"the stack exports no {name!r}: run `pulumi up` with this repository's infra/"
            )
        return value


def _pulumi_output(stack: str | None, cwd: str | None) -> str:
    """``pulumi stack output --json --show-secrets`` (once per run)."""
    if shutil.which("pulumi") is None:
        raise DeployError("outputs_source is 'pulumi' but the pulumi CLI is not on PATH")
    argv = ["pulumi", "stack", "output", "--json", "--show-secrets"]
    if stack:
        argv += ["--stack", stack]
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise DeployError(f"pulumi stack output failed (exit {proc.returncode}): {last}")
    return proc.stdout


def _outputs_file(path: str | None) -> str:
    path = path or os.environ.get("HANDLED_STACK_OUTPUTS")
    if not path:
        raise DeployError(
            "outputs_source is 'file' but neither stack_outputs_file nor HANDLED_STACK_OUTPUTS"
            " names the file"
        )
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DeployError(f"cannot read the stack outputs file {path!r}: {exc.strerror}") from None


class Secrets:
    """Lazy access to the deploy's secrets; ``repr`` never shows one."""

    def __init__(self, outputs: StackOutputs, source_db: str) -> None:
        self._outputs = outputs
        self._source_db = source_db

    def __repr__(self) -> str:
        return "Secrets(values hidden)"

    def get(self, name: str) -> str | None:
        """The secret ``name`` or None: environment first, then the stack outputs."""
        value = os.environ.get(name)
        if not value and name == "PRIMARY_CA_CERT" and os.environ.get("PRIMARY_CA_CERT_FILE"):
            value = Path(os.environ["PRIMARY_CA_CERT_FILE"]).read_text(encoding="ascii")
        if not value and name == "SPACES_ACCESS_KEY_ID":
            value = os.environ.get("AWS_ACCESS_KEY_ID")
        if not value and name == "SPACES_SECRET_ACCESS_KEY":
            value = os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not value and name == "SOURCE_ADMIN_URL" and os.environ.get("DATA_ADMIN_URL"):
            try:
                admin = parse(os.environ["DATA_ADMIN_URL"], what="DATA_ADMIN_URL")
            except UsageError as exc:
                raise DeployError(str(exc)) from None
            value = admin.replace(dbname=self._source_db).to_url()
        if not value and name in SECRET_OUTPUTS:
            found = self._outputs.get(SECRET_OUTPUTS[name])
            value = str(found) if found is not None else None
        return value or None

    def require(self, name: str) -> str:
        """The secret ``name``; a one-line :class:`DeployError` naming where to set it."""
        value = self.get(name)
        if value is None:
            where = f" or stack output {SECRET_OUTPUTS[name]!r}" if name in SECRET_OUTPUTS else ""
            raise DeployError(f"missing secret {name}: set the environment variable{where}")
        if name in URL_SECRETS:
            try:
                parse(value, what=name)
            except UsageError as exc:
                raise DeployError(str(exc)) from None
        return value

    def masks(self) -> list[str]:
        """Every secret value known now, raw and percent-encoded: what output must never show."""
        values: set[str] = set()
        for name in URL_SECRETS:
            try:
                url = self.get(name)
                password = parse(url, what=name).password if url else None
            except (UsageError, DeployError):
                continue
            if password:
                values.update({password, quote(password, safe="")})
        for name in PLAIN_SECRETS:
            value = self.get(name)
            if value:
                values.update({value, quote(value, safe="")})
        return sorted(v for v in values if len(v) >= 4)


@cache
def outputs(source: str, stack: str | None, cwd: str | None, path: str | None) -> StackOutputs:
    """The run's :class:`StackOutputs` (one per source, so Pulumi is asked once)."""
    return StackOutputs(source, stack, cwd, path)
