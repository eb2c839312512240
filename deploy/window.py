"""One VPS's maintenance window: settings plus secrets, turned into vpsctl requests.

This is where URLs are shaped for each consumer (with :mod:`dbsplit.urls`, the one home of
URL knowledge): the app's pooled and direct PRIMARY URLs with ``verify-full`` against the CA
file on the VPS, libpq environment variables for ``psql``/``pg_dump``, and the environment
``dbsplit`` reads. None of it ever leaves the operator's machine except on a request's stdin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyinfra.api.exceptions import DeployError

from dbsplit.urls import build_url, parse, tls_params
from deploy.remote import Request
from deploy.remote.vpsctl import CA_PLACEHOLDER
from deploy.secrets import Secrets, load
from deploy.settings import Settings

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

SPLIT_ENV_HEADER = "# Database split (written by deploy/production.py)"


def libpq_env(url: str, what: str) -> dict[str, str]:
    """The libpq environment variables for ``url`` (Prisma-only parameters dropped)."""
    env: dict[str, str] = {}
    for key, value in parse(url, what=what).libpq_params().items():
        if key not in LIBPQ_ENV:
            raise DeployError(f"{what}: connection parameter {key!r} has no libpq variable")
        env[LIBPQ_ENV[key]] = value
    return env


def with_tls(url: str, ca_path: str, *, pool: bool, what: str) -> str:
    """``url`` with ``sslmode=verify-full`` against ``ca_path`` (and ``pgbouncer=true`` for the
    pool), whatever TLS parameters it came with."""
    parsed = parse(url, what=what)
    params = {
        k: v
        for k, v in parsed.params
        if k not in ("sslmode", "sslrootcert", "sslcert", "pgbouncer", "sslaccept")
    }
    params |= tls_params(ca_path)
    if pool:
        params["pgbouncer"] = "true"
    if not parsed.user or not parsed.host or not parsed.dbname:
        raise DeployError(f"{what} must name a user, a host and a database: {parsed.redacted()}")
    return build_url(
        user=parsed.user,
        password=parsed.password,
        host=parsed.host,
        port=parsed.port or 5432,
        dbname=parsed.dbname,
        params=params,
    )


@dataclass(frozen=True)
class Window:
    """Settings and secrets of one host, and the requests built from them."""

    settings: Settings
    secrets: Secrets

    @classmethod
    def of(cls, host: Any) -> Window:
        """The window for ``host`` (secrets are read lazily, only those a runbook uses)."""
        settings = Settings.of(host)
        if not settings.app_dir.startswith("/"):
            raise DeployError(f"app_dir must be an absolute path, not {settings.app_dir!r}")
        return cls(
            settings, load(settings.secrets_source, settings.pulumi_stack, settings.pulumi_cwd)
        )

    # ----- connections ------------------------------------------------------------------------

    def source(self) -> dict[str, str]:
        """libpq variables for the old database ``handled``."""
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
        return with_tls(url, ca_path, pool=False, what="PRIMARY_DIRECT_URL")

    def primary_pool_url(self, ca_path: str) -> str:
        """PRIMARY's pooled URL (``pgbouncer=true``), verify-full against ``ca_path``."""
        url = self.secrets.require("PRIMARY_DATABASE_URL")
        return with_tls(url, ca_path, pool=True, what="PRIMARY_DATABASE_URL")

    def primary_direct(self) -> dict[str, str]:
        """libpq variables for PRIMARY, direct (the CA file is vpsctl's temporary copy)."""
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
        """The environment ``dbsplit`` reads its three URLs from."""
        return {
            "OLD_DATABASE_URL": self.secrets.require("OLD_DATABASE_URL"),
            "PRIMARY_DIRECT_URL": self.primary_direct_url(CA_PLACEHOLDER),
            "DATA_DATABASE_URL": self.secrets.require("DATA_DATABASE_URL"),
        }

    def app_env_values(self) -> dict[str, str]:
        """The keys the split sets in the app's ``.env`` (every other line is kept)."""
        ca = self.settings.ca_path
        return {
            "SPLIT_DB_MODE": "true",
            "PRIMARY_DATABASE_URL": self.primary_pool_url(ca),
            "PRIMARY_DIRECT_URL": self.primary_direct_url(ca),
            "DATA_DATABASE_URL": self.secrets.require("DATA_DATABASE_URL"),
            "AUTH_SECRET": self.secrets.require("AUTH_SECRET"),
        }

    def s3_args(self) -> dict[str, Any]:
        """Where the backup goes: endpoint, region, bucket, key."""
        s = self.settings
        endpoint = s.s3_endpoint or self.secrets.get("BACKUP_BUCKET_ENDPOINT")
        bucket = s.backup_bucket
        if not endpoint or not bucket:
            raise DeployError("backup_bucket and s3_endpoint must be set in group_data/")
        return {
            "endpoint": endpoint,
            "region": s.s3_region,
            "bucket": bucket,
            "key": s.backup_key,
            "addressing_style": s.s3_addressing_style,
            "multipart_chunk": s.multipart_chunk_mb << 20,
        }

    def s3_secrets(self) -> dict[str, str]:
        """The Spaces key pair."""
        return {
            "s3_access_key": self.secrets.require("SPACES_ACCESS_KEY_ID"),
            "s3_secret_key": self.secrets.require("SPACES_SECRET_ACCESS_KEY"),
        }

    # ----- requests ---------------------------------------------------------------------------

    def backup_args(self) -> dict[str, Any]:
        """Where the backup lives on the VPS."""
        return {"backup_dir": self.settings.backup_dir, "backup_name": self.settings.backup_name}

    def app_args(self, mode: str) -> dict[str, Any]:
        """What vpsctl's app actions need to know (``mode`` is the health mode expected)."""
        s = self.settings
        return {
            "app_dir": s.app_dir,
            "env_file": s.env_file,
            "state_dir": s.state_dir,
            "apps": list(s.pm2_apps),
            "ecosystem": s.ecosystem,
            "health_url": s.health_url,
            "mode": mode,
        }

    def env_args(self) -> dict[str, Any]:
        """Where the app's ``.env`` and CA file are."""
        s = self.settings
        return {"env_file": s.env_file, "ca_path": s.ca_path, "header": SPLIT_ENV_HEADER}

    def request(self, action: str, args: dict[str, Any] | None = None, **secrets: Any) -> Request:
        """A vpsctl request; ``secrets`` travel on stdin and are masked in anything it prints."""
        return Request(action, args or {}, secrets, self.secrets.masks())
