"""The one place secrets are read: environment variables, else the Pulumi stack's outputs.

Nothing here is ever stored in the repository, in ``host.data`` (pyinfra prints host data in
``debug-inventory`` and ``--debug-operations``) or in an operation's arguments (``--json``
prints them). Runbooks take secrets from :func:`load` and hand them to the VPS only inside a
:class:`deploy.remote.Request` on stdin.

=============================  ========================  ========================================
environment variable           Pulumi output             what
=============================  ========================  ========================================
``OLD_DATABASE_URL``           -                         the app's current URL of ``handled``
``PRIMARY_DIRECT_URL``         ``primaryDirectUrl``      PRIMARY, direct (migrations, dbsplit)
``PRIMARY_DATABASE_URL``       ``primaryDatabaseUrl``    PRIMARY through the PgBouncer pool
``PRIMARY_CA_CERT``            ``caCertificate``         the cluster's CA (PEM text)
``PRIMARY_CA_CERT_FILE``       -                         ... or a file holding it
``DATA_DATABASE_URL``          -                         ``handled_data`` as its owner role
``DATA_ADMIN_URL``             -                         a superuser on the VPS's DATA server
``AUTH_SECRET``                ``authSecret``            the app's session secret
``SPACES_ACCESS_KEY_ID``       -                         Spaces (S3) key for the backup bucket
``SPACES_SECRET_ACCESS_KEY``   -                         ... and its secret
=============================  ========================  ========================================
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from urllib.parse import quote

from pyinfra.api.exceptions import DeployError

from dbsplit.errors import UsageError
from dbsplit.urls import parse

PULUMI_OUTPUTS: Mapping[str, str] = {
    "PRIMARY_DIRECT_URL": "primaryDirectUrl",
    "PRIMARY_DATABASE_URL": "primaryDatabaseUrl",
    "PRIMARY_CA_CERT": "caCertificate",
    "AUTH_SECRET": "authSecret",
}
"""Secrets that may come from ``pulumi stack output``, by environment variable name."""

URL_SECRETS = (
    "OLD_DATABASE_URL",
    "PRIMARY_DIRECT_URL",
    "PRIMARY_DATABASE_URL",
    "DATA_DATABASE_URL",
    "DATA_ADMIN_URL",
)
PLAIN_SECRETS = ("AUTH_SECRET", "SPACES_SECRET_ACCESS_KEY")


class Secrets:
    """Lazy access to the deploy's secrets; ``repr`` never shows one."""

    def __init__(self, source: str, stack: str | None, cwd: str | None) -> None:
        """Read from the environment, and from ``pulumi stack output`` when ``source="pulumi"``."""
        if source not in ("env", "pulumi"):
            raise DeployError(f"secrets_source must be 'env' or 'pulumi', not {source!r}")
        self._source = source
        self._stack = stack
        self._cwd = cwd
        self._outputs: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"Secrets(source={self._source!r}, values hidden)"

    def _pulumi(self) -> dict[str, str]:
        if self._outputs is None:
            self._outputs = _pulumi_outputs(self._stack, self._cwd)
        return self._outputs

    def get(self, name: str) -> str | None:
        """The secret ``name`` or None: environment first, then the Pulumi outputs."""
        value = os.environ.get(name)
        if not value and name == "PRIMARY_CA_CERT" and os.environ.get("PRIMARY_CA_CERT_FILE"):
            value = Path(os.environ["PRIMARY_CA_CERT_FILE"]).read_text(encoding="ascii")
        if not value and name == "SPACES_ACCESS_KEY_ID":
            value = os.environ.get("AWS_ACCESS_KEY_ID")
        if not value and name == "SPACES_SECRET_ACCESS_KEY":
            value = os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not value and self._source == "pulumi" and name in PULUMI_OUTPUTS:
            value = self._pulumi().get(PULUMI_OUTPUTS[name])
        return value or None

    def require(self, name: str) -> str:
        """The secret ``name``; a one-line :class:`DeployError` naming where to set it."""
        value = self.get(name)
        if value is None:
            where = f" or Pulumi output {PULUMI_OUTPUTS[name]!r}" if name in PULUMI_OUTPUTS else ""
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
            url = self.get(name)
            if url:
                try:
                    password = parse(url, what=name).password
                except UsageError:
                    continue
                if password:
                    values.update({password, quote(password, safe="")})
        for name in PLAIN_SECRETS:
            value = self.get(name)
            if value:
                values.update({value, quote(value, safe="")})
        return sorted(v for v in values if len(v) >= 4)


def _pulumi_outputs(stack: str | None, cwd: str | None) -> dict[str, str]:
    """``pulumi stack output --json --show-secrets`` (once per run)."""
    if shutil.which("pulumi") is None:
        raise DeployError("secrets_source is 'pulumi' but the pulumi CLI is not on PATH")
    argv = ["pulumi", "stack", "output", "--json", "--show-secrets"]
    if stack:
        argv += ["--stack", stack]
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise DeployError(f"pulumi stack output failed (exit {proc.returncode}): {last}")
    try:
        outputs = json.loads(proc.stdout)
    except ValueError:
        raise DeployError("pulumi stack output did not print JSON") from None
    return {str(k): str(v) for k, v in outputs.items() if v is not None}


@cache
def load(source: str, stack: str | None, cwd: str | None) -> Secrets:
    """The run's :class:`Secrets` (one per source, so Pulumi is asked once)."""
    return Secrets(source, stack, cwd)
