"""The one home of connection-URL knowledge, and of the app's ``.env``.

Builds the app's pooled and direct URLs (Prisma parameters, TLS with the CA), parses the URLs the
app uses into libpq connection strings, redacts passwords, and shapes the app's ``.env`` (the
keys the split sets, merged into the file as the app's dotenv reader reads it back). Pure
functions: ``infra/`` and ``deploy/`` import them, so a URL is built, parsed and redacted in
exactly one way, and the ``.env`` is merged on the VPS by this same module (it needs only the
standard library there: psycopg is imported only by :meth:`PgUrl.conninfo`).

Example::

    >>> app_pool_url(user="app", password="s3cr=t", host="db.example.com",
    ...              pool_name="handled-pool", ca_path="/etc/handled/ca.crt", pgbouncer=True)
    'postgresql://app:s3cr%3Dt@db.example.com:25061/handled-pool?sslmode=verify-full&sslrootcert=%2Fetc%2Fhandled%2Fca.crt&pgbouncer=true'
    >>> redact("postgresql://app:s3cr%3Dt@db.example.com:25060/handled")
    'postgresql://app:***@db.example.com:25060/handled'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

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
        from psycopg.conninfo import make_conninfo

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
    *,
    user: str,
    password: str | None,
    host: str,
    pool_name: str,
    ca_path: str,
    pgbouncer: bool,
    port: int = DO_POOL_PORT,
    extra: Mapping[str, str] | None = None,
) -> str:
    """The app's URL through DigitalOcean's PgBouncer pool (the pool name is the database).

    ``pgbouncer`` is Prisma's ``pgbouncer`` parameter, written out either way
    (``pgbouncer=true`` or ``pgbouncer=false``): the stack's ``prismaPgbouncer`` decides it.
    """
    params = dict(extra or {}) | tls_params(ca_path) | {"pgbouncer": _flag(pgbouncer)}
    return build_url(
        user=user, password=password, host=host, port=port, dbname=pool_name, params=params
    )


def app_direct_url(
    *,
    user: str,
    password: str | None,
    host: str,
    dbname: str,
    ca_path: str,
    port: int = DO_DIRECT_PORT,
    extra: Mapping[str, str] | None = None,
) -> str:
    """A direct URL to the cluster, bypassing the pool: for migrations and the data copy."""
    return build_url(
        user=user,
        password=password,
        host=host,
        port=port,
        dbname=dbname,
        params=dict(extra or {}) | tls_params(ca_path),
    )


#: Parameters that carry the TLS and pooling shape: :func:`with_ca_path` sets them anew.
_SHAPE_PARAMS = frozenset({"sslmode", "sslrootcert", "sslcert", "sslaccept", "pgbouncer"})


def with_ca_path(
    url: str, ca_path: str, *, pool: bool, what: str, pgbouncer: bool | None = None
) -> str:
    """The app's PRIMARY ``url`` (pooled or direct) in the one shape :func:`app_pool_url` or
    :func:`app_direct_url` gives, verifying the server against ``ca_path`` (where the CA is on
    the machine that connects). Other parameters are kept; a pooled URL needs ``pgbouncer``
    (the stack's ``prismaPgbouncer``), a direct one never carries it."""
    parsed = parse(url, what=what)
    if not parsed.user or not parsed.host or not parsed.dbname:
        raise UsageError(f"{what} must name a user, a host and a database: {parsed.redacted()}")
    extra = {k: v for k, v in parsed.params if k not in _SHAPE_PARAMS}
    if pool:
        if pgbouncer is None:
            raise UsageError(f"{what}: a pooled URL needs the pgbouncer setting")
        return app_pool_url(
            user=parsed.user,
            password=parsed.password,
            host=parsed.host,
            pool_name=parsed.dbname,
            ca_path=ca_path,
            pgbouncer=pgbouncer,
            port=parsed.port or DO_POOL_PORT,
            extra=extra,
        )
    return app_direct_url(
        user=parsed.user,
        password=parsed.password,
        host=parsed.host,
        dbname=parsed.dbname,
        ca_path=ca_path,
        port=parsed.port or DO_DIRECT_PORT,
        extra=extra,
    )


# ----- the app's .env ----------------------------------------------------------------------

#: The comment above the keys the split appends to an ``.env`` that lacked them.
SPLIT_ENV_HEADER = "# Database split (written by deploy/production.py)"
_ENV_KEY = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")


def split_env_values(
    *, primary_pool_url: str, primary_direct_url: str, data_url: str, auth_secret: str
) -> dict[str, str]:
    """The keys the split sets in the app's ``.env`` (every other line of it is kept)."""
    return {
        "SPLIT_DB_MODE": "true",
        "PRIMARY_DATABASE_URL": primary_pool_url,
        "PRIMARY_DIRECT_URL": primary_direct_url,
        "DATA_DATABASE_URL": data_url,
        "AUTH_SECRET": auth_secret,
    }


def env_line(key: str, value: str) -> str:
    """``KEY="value"`` as the app's dotenv reader parses it back to ``value`` exactly."""
    if "\n" in value or "\r" in value:
        raise UsageError(f"value of {key} contains a line break")
    if "'" not in value and ('"' in value or "\\" in value or "#" in value):
        return f"{key}='{value}'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{key}="{escaped}"'


def merged_env(base: str, values: Mapping[str, str], header: str = SPLIT_ENV_HEADER) -> str:
    """``base`` with each key of ``values`` set: first occurrence replaced, later ones dropped,
    missing keys appended under ``header``; every other line kept as it was."""
    out: list[str] = []
    seen: set[str] = set()
    for line in base.splitlines():
        match = _ENV_KEY.match(line)
        if match and match.group(1) in values:
            key = match.group(1)
            if key not in seen:
                out.append(env_line(key, values[key]))
                seen.add(key)
            continue
        out.append(line)
    missing = [key for key in values if key not in seen]
    if missing:
        if out and out[-1].strip():
            out.append("")
        out.append(header)
        out.extend(env_line(key, values[key]) for key in missing)
    return "\n".join(out) + "\n"


def env_value(text: str, key: str) -> str | None:
    """The value of the first ``key=`` line of an ``.env`` text (quotes removed), or None."""
    for line in text.splitlines():
        match = _ENV_KEY.match(line)
        if match and match.group(1) == key:
            return line.split("=", 1)[1].strip().strip("\"'")
    return None


_MASK = "***"


def _flag(value: bool) -> str:
    return "true" if value else "false"


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
