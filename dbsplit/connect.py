"""Opening connections: one place sets the session settings and the bounds every dbsplit
connection shares.

Every connection gets the same ``TimeZone``, ``DateStyle``, ``IntervalStyle`` and
``extra_float_digits``, so a row renders to the same text on the source and on both targets
(checksums depend on it). Connection failures become :class:`ConnectError` with the password
removed from the message.

**Bounds.** Nothing dbsplit does may wait on a server without limit: a dead network during the
window would keep the app down and the source frozen until the kernel gives up (hours). What
bounds each wait (README, "Bounds"; the values are the constants below)::

    what                                   value        bounds
    -------------------------------------  -----------  -----------------------------------------
    connect_timeout (libpq)                10 s         opening a connection
    keepalives_idle/_interval/_count       10 s, 5 s,   a silent peer while dbsplit waits for a
      (libpq)                              3            result: probed after 10 s idle
    tcp_user_timeout (libpq)               20 s         data (a COPY stream) or probes left
                                                        unacknowledged: the connection ends
    heartbeat (dbsplit.watchdog)           every 5 s,   a server whose kernel still answers but
                                           lost at 20 s which does nothing (stopped, hung)
    lock_timeout (server)                  60 s         waiting for a lock another session holds
    statement_timeout (server)             60 s         one statement, on sessions that run only
                                                        short ones (catalog reads, the freeze,
                                                        status); 0 on every other session
    tcp_keepalives_*, tcp_user_timeout     as libpq's   the server side: a backend whose client
      (server)                                          vanished ends, freeing its locks
    client_connection_check_interval       10 s         a backend still running a long statement
      (server, PostgreSQL 14+)                          for a client that is gone

A long statement (a COPY of a big table, an index build, ``VALIDATE CONSTRAINT``, a checksum,
a materialized view refresh) gets no statement timeout: at production scale it may take
minutes. A dead network ends it through keepalives and ``tcp_user_timeout``, a hung server
through the heartbeat, a wait for a lock through ``lock_timeout``. A URL may set its own
``connect_timeout``, ``keepalives_*`` or ``tcp_user_timeout`` (libpq parameters), which then
win; nothing else changes these values.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from dbsplit import watchdog
from dbsplit.errors import ConnectError, UsageError
from dbsplit.urls import PgUrl, redact

#: Session settings shared by every connection (source and targets alike).
SESSION_SETTINGS: dict[str, str] = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "client_encoding": "UTF8",
    # PRIMARY's config ends abandoned transactions after 5 minutes (infra/); a copy or an
    # index build may keep its transaction open longer between statements.
    "idle_in_transaction_session_timeout": "0",
}

#: Seconds without an answer after which a peer is dead (tcp_user_timeout; keepalives probe
#: after 10 s idle, every 5 s, and the kernel ends the connection at this bound).
SILENT_PEER_SECONDS = 20
#: libpq parameters of every connection, ``pg_dump``'s included (the table above).
CLIENT_BOUNDS: dict[str, str] = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": str(SILENT_PEER_SECONDS * 1000),
}
LOCK_TIMEOUT = "60s"
#: Server settings of every session (the table above).
SERVER_BOUNDS: dict[str, str] = {
    "lock_timeout": LOCK_TIMEOUT,
    "statement_timeout": "0",
    "tcp_keepalives_idle": CLIENT_BOUNDS["keepalives_idle"],
    "tcp_keepalives_interval": CLIENT_BOUNDS["keepalives_interval"],
    "tcp_keepalives_count": CLIENT_BOUNDS["keepalives_count"],
    "tcp_user_timeout": CLIENT_BOUNDS["tcp_user_timeout"],
    "client_connection_check_interval": "10s",
}
#: ``statement_timeout`` of sessions that run only short statements.
SHORT_STATEMENT_TIMEOUT = "60s"
#: The heartbeat: a ``SELECT 1`` every ``HEARTBEAT_SECONDS``; no answer for
#: ``NO_ANSWER_SECONDS`` and the server is lost (:mod:`dbsplit.watchdog`).
HEARTBEAT_SECONDS = 5.0
NO_ANSWER_SECONDS = 20.0
#: Server settings that exist only from a server version on.
_SINCE = {"client_connection_check_interval": 140000}

APPLICATION_NAME = "dbsplit"


def session_options() -> str:
    """The ``options`` startup parameter that applies :data:`SESSION_SETTINGS`."""
    return " ".join(
        f"-c {name}={value.replace(' ', '')}" for name, value in SESSION_SETTINGS.items()
    )


def libpq_params(url: PgUrl) -> dict[str, str]:
    """``url``'s libpq parameters with :data:`CLIENT_BOUNDS` (the URL's own values win)."""
    params = url.libpq_params()
    for name, value in CLIENT_BOUNDS.items():
        params.setdefault(name, value)
    params.setdefault("application_name", APPLICATION_NAME)
    return params


def connect(
    url: PgUrl,
    *,
    what: str,
    autocommit: bool = False,
    short_statements: bool = False,
) -> psycopg.Connection[tuple[Any, ...]]:
    """Connect to ``url`` with the shared session settings and bounds.

    ``what`` names the database in messages ("source", "PRIMARY", "DATA").
    ``short_statements``: the session runs only short statements (catalog reads, bookkeeping),
    each bounded by :data:`SHORT_STATEMENT_TIMEOUT`; a long one lifts it with ``SET LOCAL
    statement_timeout = 0``.
    Raises :class:`ConnectError` (exit 2) with a one-line, password-free message, or
    :class:`~dbsplit.errors.LostError` (exit 5) for a server this process lost.
    """
    server = watched_server(url, what)
    watchdog.check(server.key)
    params = libpq_params(url)
    try:
        conn = psycopg.connect(make_conninfo("", **params), autocommit=autocommit)
    except UsageError:
        raise
    except psycopg.Error as exc:
        watchdog.unreachable(server, first_line(exc))
        raise ConnectError(
            f"cannot connect to {what} {url.redacted()}: {first_line(exc)}"
        ) from None
    settings = dict(SESSION_SETTINGS, **SERVER_BOUNDS)
    if short_statements:
        settings["statement_timeout"] = SHORT_STATEMENT_TIMEOUT
    version = conn.info.server_version
    try:
        with conn.cursor() as cur:
            for name, value in settings.items():
                if version >= _SINCE.get(name, 0):
                    cur.execute("SELECT set_config(%s, %s, false)", (name, value))
        if not autocommit:
            conn.commit()
    except psycopg.Error as exc:
        conn.close()
        raise ConnectError(
            f"cannot set up session on {what} {url.redacted()}: {first_line(exc)}"
        ) from None
    watchdog.register(conn, server)
    return conn


def watched_server(url: PgUrl, what: str) -> watchdog.Server:
    """How the watchdog sees ``url``'s server (its heartbeat session: read-only)."""
    params = libpq_params(url)
    params["application_name"] = f"{APPLICATION_NAME} heartbeat"
    params["options"] = (
        params.get("options", "") + " -c default_transaction_read_only=on"
        f" -c statement_timeout={int(NO_ANSWER_SECONDS)}s"
    ).strip()
    return watchdog.Server(
        key=url.redacted(),
        what=what,
        heartbeat_conninfo=make_conninfo("", **params),
        every=HEARTBEAT_SECONDS,
        silence=NO_ANSWER_SECONDS,
        explain=lost_reason,
    )


def lost_reason(libpq_message: str, stalled: float = 0.0) -> str:
    """Why a connection broke, from libpq's message and how long a write to it had blocked
    (``stalled`` s): keepalives and ``tcp_user_timeout`` end a silent peer's connection after
    :data:`SILENT_PEER_SECONDS`, and libpq then says "timed out" (or over TLS, often,
    "unexpected eof")."""
    line = first_line(Exception(libpq_message))
    if stalled >= SILENT_PEER_SECONDS - 1 or "timed out" in line.lower():
        return f"no answer for {SILENT_PEER_SECONDS} s (tcp_user_timeout: {line})"
    return line


def first_line(exc: BaseException) -> str:
    """The first non-empty line of ``exc``'s message, passwords redacted."""
    text = redact(str(exc)).strip()
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            if isinstance(exc, psycopg.errors.LockNotAvailable):
                line += f" (waited {LOCK_TIMEOUT} for a lock another session holds)"
            return line
    return type(exc).__name__


_first_line = first_line
