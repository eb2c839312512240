"""The one home of connection-URL knowledge.

Builds the app's pooled and direct URLs (Prisma parameters, TLS with the CA), parses the URLs the
app uses into libpq connection strings, and redacts passwords. Pure functions: ``infra/`` and
``deploy/`` import them, so a URL is built, parsed and redacted in exactly one way.

Example::

    >>> app_pool_url(user="app", password="s3cr=t", host="db.example.com",
    ...              pool_name="handled-pool", ca_path="/etc/handled/ca.crt")
    'postgresql://app:s3cr%3Dt@db.example.com:25061/handled-pool?sslmode=verify-full&sslrootcert=%2Fetc%2Fhandled%2Fca.crt&pgbouncer=true'
    >>> redact("postgresql://app:s3cr%3Dt@db.example.com:25060/handled")
    'postgresql://app:***@db.example.com:25060/handled'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from psycopg.conninfo import make_conninfo

from dbsplit.errors import UsageError

#: DigitalOcean's ports: direct connections, and the PgBouncer connection pools.
DO_DIRECT_PORT = 25060
DO_POOL_PORT = 25061

SCHEMES = ("postgresql", "postgres")

#: Parameters Prisma (and node-postgres) understand but libpq does not: dropped on parsing.
PRISMA_ONLY_PARAMS = frozenset(
    {
        "pgbouncer",
        "connection_limit",
        "pool_timeout",
        "schema",
        "sslaccept",
        "sslidentity",
        "statement_cache_size",
        "socket_timeout",
        "max_connection_lifetime",
        "max_idle_connection_lifetime",
        "uselibpqcompat",
    }
)

#: Connection parameters libpq accepts in a URL query (PostgreSQL 17 keywords).
LIBPQ_PARAMS = frozenset(
    {
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "password",
        "passfile",
        "require_auth",
        "channel_binding",
        "connect_timeout",
        "client_encoding",
        "options",
        "application_name",
        "fallback_application_name",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "replication",
        "gssencmode",
        "sslmode",
        "sslnegotiation",
        "sslcompression",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslcertmode",
        "sslrootcert",
        "sslcrl",
        "sslcrldir",
        "sslsni",
        "requirepeer",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "krbsrvname",
        "gsslib",
        "gssdelegation",
        "service",
        "target_session_attrs",
        "load_balance_hosts",
    }
)

_PASSWORD_RE = re.compile(
    r"(?P<head>[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)(?P<pw>[^@\s]*)(?P<at>@)", re.I
)
_PASSWORD_KV_RE = re.compile(r"(?P<head>password\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|\S+)", re.I)


@dataclass(frozen=True)
class PgUrl:
    """A parsed PostgreSQL URL. The password never shows in ``repr`` or ``str``."""

    user: str | None
    password: str | None = field(repr=False)
    host: str | None
    port: int | None
    dbname: str | None
    params: tuple[tuple[str, str], ...] = ()

    @property
    def query(self) -> dict[str, str]:
        """The query parameters as a dict (the last value wins)."""
        return dict(self.params)

    @property
    def is_transaction_pooler(self) -> bool:
        """True for a URL that goes through a transaction-mode PgBouncer pool."""
        return self.query.get("pgbouncer", "").lower() in ("true", "1") or self.port == DO_POOL_PORT

    def redacted(self) -> str:
        """The URL as text, password replaced by ``***``: safe for logs and messages."""
        return _render(self, password=_MASK if self.password else None)

    def __str__(self) -> str:
        return self.redacted()

    def to_url(self) -> str:
        """The URL as text, password included: for handing to a child process's environment."""
        return _render(self, password=self.password)

    def libpq_params(self) -> dict[str, str]:
        """Keyword parameters for libpq: Prisma-only parameters dropped, ``sslcert`` mapped.

        Prisma's ``sslcert`` names the server's CA file, which libpq calls ``sslrootcert``.
        """
        query = dict(self.params)
        for name in PRISMA_ONLY_PARAMS:
            query.pop(name, None)
        if "sslcert" in query and "sslkey" not in query:
            ca = query.pop("sslcert")
            query.setdefault("sslrootcert", ca)
        unknown = sorted(set(query) - LIBPQ_PARAMS)
        if unknown:
            raise UsageError(f"unknown connection parameter {unknown[0]!r} in {self.redacted()}")
        kwargs: dict[str, str] = {}
        if self.host:
            kwargs["host"] = self.host
        if self.port is not None:
            kwargs["port"] = str(self.port)
        if self.dbname:
            kwargs["dbname"] = self.dbname
        if self.user:
            kwargs["user"] = self.user
        if self.password is not None:
            kwargs["password"] = self.password
        kwargs.update(query)
        return kwargs

    def conninfo(self) -> str:
        """A libpq connection string (contains the password: never log it)."""
        return make_conninfo("", **self.libpq_params())

    def replace(self, **changes: object) -> PgUrl:
        """A copy with some fields changed (``dbname=``, ``port=``...)."""
        values: dict[str, object] = {
            "user": self.user,
            "password": self.password,
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "params": self.params,
        }
        values.update(changes)
        return PgUrl(**values)  # type: ignore[arg-type]


def parse(url: str, *, what: str = "database URL") -> PgUrl:
    """Parse a ``postgresql://`` URL, or raise :class:`UsageError` naming what is wrong.

    The message never contains the password.
    """
    text = url.strip()
    if not text:
        raise UsageError(f"{what} is empty")
    shown = redact(text)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"malformed {what} {shown}: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise UsageError(f"malformed {what} {shown}: scheme must be postgresql://")
    if parts.fragment:
        raise UsageError(f"malformed {what} {shown}: unexpected '#' fragment")
    host = parts.hostname
    if parts.netloc and not host and "@" not in parts.netloc:
        raise UsageError(f"malformed {what} {shown}: no host")
    path = unquote(parts.path.lstrip("/"))
    if "/" in path:
        raise UsageError(f"malformed {what} {shown}: database name {path!r} contains '/'")
    try:
        params = tuple(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False))
    except ValueError as exc:  # pragma: no cover - parse_qsl is lenient
        raise UsageError(f"malformed {what} {shown}: {exc}") from None
    return PgUrl(
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        host=host or None,
        port=port,
        dbname=path or None,
        params=params,
    )


def redact(text: str) -> str:
    """Replace every password in ``text`` (URLs or ``password=`` keywords) with ``***``."""
    text = _PASSWORD_RE.sub(lambda m: f"{m['head']}***{m['at']}", text)
    return _PASSWORD_KV_RE.sub(lambda m: f"{m['head']}***", text)


def build_url(
    *,
    user: str,
    password: str | None,
    host: str,
    port: int,
    dbname: str,
    params: Mapping[str, str] | None = None,
) -> str:
    """Build a ``postgresql://`` URL, percent-encoding every part."""
    auth = quote(user, safe="")
    if password is not None:
        auth += ":" + quote(password, safe="")
    netloc = f"[{host}]" if ":" in host else host
    url = f"postgresql://{auth}@{netloc}:{port}/{quote(dbname, safe='')}"
    if params:
        url += "?" + urlencode(list(params.items()), quote_via=quote, safe="")
    return url


def tls_params(ca_path: str) -> dict[str, str]:
    """TLS that verifies the server against ``ca_path`` and its host name."""
    return {"sslmode": "verify-full", "sslrootcert": ca_path}


def app_pool_url(
    *, user: str, password: str, host: str, pool_name: str, ca_path: str, port: int = DO_POOL_PORT
) -> str:
    """The app's URL through DigitalOcean's PgBouncer pool (the pool name is the database)."""
    params = tls_params(ca_path) | {"pgbouncer": "true"}
    return build_url(
        user=user, password=password, host=host, port=port, dbname=pool_name, params=params
    )


def app_direct_url(
    *, user: str, password: str, host: str, dbname: str, ca_path: str, port: int = DO_DIRECT_PORT
) -> str:
    """A direct URL to the cluster, bypassing the pool: for migrations and the data copy."""
    return build_url(
        user=user,
        password=password,
        host=host,
        port=port,
        dbname=dbname,
        params=tls_params(ca_path),
    )


_MASK = "***"


def _render(url: PgUrl, *, password: str | None) -> str:
    auth = ""
    if url.user:
        auth = quote(url.user, safe="")
        if password is not None:
            auth += ":" + (password if password is _MASK else quote(password, safe=""))
        auth += "@"
    host = url.host or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{url.port}" if url.port is not None else ""
    db = "/" + quote(url.dbname, safe="") if url.dbname else ""
    query = "?" + urlencode(list(url.params), quote_via=quote, safe="") if url.params else ""
    return f"postgresql://{auth}{host}{port}{db}{query}"
