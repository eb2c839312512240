"""One VPS's runbook run: settings, stack values and secrets, turned into remote requests.

URLs are shaped by :mod:`dbsplit.urls` (the one home of URL knowledge): here they are only
turned into libpq environment variables for ``psql``/``pg_dump`` and pointed at the CA's file
where each consumer finds it (the app: the stack's ``caCertPath``; a remote action: its own
private temporary copy). None of it ever leaves the operator's machine except on a request's
stdin.
"""

from __future__ import annotations

import json
import secrets as random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pyinfra.api.exceptions import DeployError

from dbsplit.errors import UsageError
from dbsplit.urls import parse, split_env_values, with_ca_path
from deploy.remote import Request
from deploy.remote.runtime import CA_PLACEHOLDER
from deploy.remote.smoke import Smoke
from deploy.secrets import Secrets, outputs
from deploy.settings import Settings, StackValues

RUN_ID = random.token_hex(6)
"""This pyinfra run: every request carries it, the VPS's lock and journal record it."""

LIBPQ_ENV = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "sslnegotiation": "PGSSLNEGOTIATION",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
    "options": "PGOPTIONS",
    "channel_binding": "PGCHANNELBINDING",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "require_auth": "PGREQUIREAUTH",
    "gssencmode": "PGGSSENCMODE",
}


def libpq_env(url: str, what: str) -> dict[str, str]:
    """The libpq environment variables for ``url`` (Prisma-only parameters dropped)."""
    env: dict[str, str] = {}
    try:
        params = parse(url, what=what).libpq_params()
    except UsageError as exc:
        raise DeployError(str(exc)) from None
    for key, value in params.items():
        if key not in LIBPQ_ENV:
            raise DeployError(f"{what}: connection parameter {key!r} has no libpq variable")
        env[LIBPQ_ENV[key]] = value
    return env


@dataclass(frozen=True)
class Window:
    """Settings, stack values and secrets of one host, and the requests built from them."""

    settings: Settings
    secrets: Secrets
    runbook: str
    run: str = RUN_ID

    @classmethod
    def of(cls, host: Any, runbook: str = "window") -> Window:
        """The window for ``host`` (outputs and secrets are read lazily, only those used)."""
        settings = Settings.of(host)
        stack = outputs(
            settings.outputs_source,
            settings.pulumi_stack,
            settings.pulumi_cwd,
            settings.stack_outputs_file,
        )
        return cls(settings, Secrets(stack, settings.source_db), runbook)

    @cached_property
    def stack(self) -> StackValues:
        """What the stack's outputs say (CA path, pool size, Prisma's pgbouncer=, bucket)."""
        s = self.settings
        return StackValues.of(
            outputs(s.outputs_source, s.pulumi_stack, s.pulumi_cwd, s.stack_outputs_file)
        )

    # ----- connections ------------------------------------------------------------------------

    def source_admin(self) -> dict[str, str]:
        """libpq variables for the old database as a superuser of its server."""
        return libpq_env(self.secrets.require("SOURCE_ADMIN_URL"), "SOURCE_ADMIN_URL")

    def source_app(self) -> dict[str, str]:
        """libpq variables for the old database as the app's role."""
        return libpq_env(self.secrets.require("OLD_DATABASE_URL"), "OLD_DATABASE_URL")

    def data(self) -> dict[str, str]:
        """libpq variables for ``handled_data`` as its owner role."""
        return libpq_env(self.secrets.require("DATA_DATABASE_URL"), "DATA_DATABASE_URL")

    def data_admin(self) -> dict[str, str]:
        """libpq variables for a superuser of the VPS's DATA server."""
        return libpq_env(self.secrets.require("DATA_ADMIN_URL"), "DATA_ADMIN_URL")

    def primary_direct_url(self, ca_path: str) -> str:
        """PRIMARY's direct URL, verify-full against ``ca_path``."""
        url = self.secrets.require("PRIMARY_DIRECT_URL")
        return _shaped(url, ca_path, pool=False, what="PRIMARY_DIRECT_URL")

    def primary_pool_url(self, ca_path: str) -> str:
        """PRIMARY's pooled URL (``pgbouncer=`` as the stack's ``prismaPgbouncer`` says),
        verify-full against ``ca_path``."""
        url = self.secrets.require("PRIMARY_DATABASE_URL")
        return _shaped(
            url, ca_path, pool=True, what="PRIMARY_DATABASE_URL", pgbouncer=self.stack.pgbouncer
        )

    def primary_direct(self) -> dict[str, str]:
        """libpq variables for PRIMARY, direct (the CA file is the action's private copy)."""
        return libpq_env(self.primary_direct_url(CA_PLACEHOLDER), "PRIMARY_DIRECT_URL")

    def primary_pool(self) -> dict[str, str]:
        """libpq variables for PRIMARY through the pool."""
        return libpq_env(self.primary_pool_url(CA_PLACEHOLDER), "PRIMARY_DATABASE_URL")

    def ca_pem(self) -> str:
        """The cluster's CA certificate (PEM)."""
        pem = self.secrets.require("PRIMARY_CA_CERT")
        if "BEGIN CERTIFICATE" not in pem:
            raise DeployError("PRIMARY_CA_CERT is not a PEM certificate")
        return pem if pem.endswith("\n") else pem + "\n"

    def dbsplit_env(self) -> dict[str, str]:
        """The environment ``dbsplit`` reads its three URLs from: it reads the source as the
        superuser, the one role that may still connect once it is frozen."""
        return {
            "OLD_DATABASE_URL": self.secrets.require("SOURCE_ADMIN_URL"),
            "PRIMARY_DIRECT_URL": self.primary_direct_url(CA_PLACEHOLDER),
            "DATA_DATABASE_URL": self.secrets.require("DATA_DATABASE_URL"),
        }

    def app_env_values(self) -> dict[str, str]:
        """The keys the split sets in the app's ``.env`` (every other line is kept)."""
        ca = self.stack.ca_path
        return split_env_values(
            primary_pool_url=self.primary_pool_url(ca),
            primary_direct_url=self.primary_direct_url(ca),
            data_url=self.secrets.require("DATA_DATABASE_URL"),
            auth_secret=self.secrets.require("AUTH_SECRET"),
        )

    def bucket(self) -> dict[str, Any]:
        """Where files go in Spaces: the stack's bucket, endpoint and region, and how to talk to
        it (the fields of :class:`deploy.remote.spaces.Bucket`)."""
        s, stack = self.settings, self.stack
        return {
            "endpoint": stack.endpoint,
            "region": stack.region,
            "bucket": stack.bucket,
            "addressing_style": s.s3_addressing_style,
            "multipart_chunk": s.multipart_chunk_mb << 20,
        }

    def s3_secrets(self) -> dict[str, str]:
        """The Spaces key pair."""
        return {
            "s3_access_key": self.secrets.require("SPACES_ACCESS_KEY_ID"),
            "s3_secret_key": self.secrets.require("SPACES_SECRET_ACCESS_KEY"),
        }

    def smoke(self) -> Smoke:
        """The smoke checks, the apps' URLs and the smoke user (never the password)."""
        s = self.settings
        return Smoke(list(s.smoke_checks), dict(s.app_urls), s.smoke_user)

    def smoke_secrets(self) -> dict[str, str]:
        """The smoke user's password, when a check logs in with it."""
        if not any("{smoke_password}" in json.dumps(c) for c in self.settings.smoke_checks):
            return {}
        return {"smoke_password": self.secrets.require("SMOKE_PASSWORD")}

    # ----- requests ---------------------------------------------------------------------------

    def request(self, func: Callable[..., Any], args: Any, **secrets: Any) -> Request:
        """A request for the remote action ``func`` with ``args`` (its request dataclass);
        ``secrets`` travel on stdin and are masked in anything the VPS side prints."""
        return Request(
            func,
            args,
            secrets=secrets,
            mask=self.secrets.masks(),
            run=self.run,
            runbook=self.runbook,
            state_dir=self.settings.state_dir,
            progress_every=self.settings.progress_seconds,
        )


def _shaped(url: str, ca_path: str, *, pool: bool, what: str, pgbouncer: bool | None = None) -> str:
    try:
        return with_ca_path(url, ca_path, pool=pool, what=what, pgbouncer=pgbouncer)
    except UsageError as exc:
        raise DeployError(str(exc)) from None
