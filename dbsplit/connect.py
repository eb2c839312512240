"""Opening connections: one place sets the session settings every dbsplit connection shares.

Every connection gets the same ``TimeZone``, ``DateStyle``, ``IntervalStyle`` and
``extra_float_digits``, so a row renders to the same text on the source and on both targets
(checksums depend on it). Connection failures become :class:`ConnectError` with the password
removed from the message.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

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

APPLICATION_NAME = "dbsplit"


def session_options() -> str:
    """The ``options`` startup parameter that applies :data:`SESSION_SETTINGS`."""
    return " ".join(
        f"-c {name}={value.replace(' ', '')}" for name, value in SESSION_SETTINGS.items()
    )


def connect(
    url: PgUrl,
    *,
    what: str,
    autocommit: bool = False,
    connect_timeout: int = 10,
) -> psycopg.Connection[tuple[Any, ...]]:
    """Connect to ``url`` with the shared session settings.

    ``what`` names the database in messages ("source", "PRIMARY", "DATA").
    Raises :class:`ConnectError` (exit 2) with a one-line, password-free message.
    """
    params = url.libpq_params()
    params.setdefault("connect_timeout", str(connect_timeout))
    params.setdefault("application_name", APPLICATION_NAME)
    try:
        conn = psycopg.connect(make_conninfo("", **params), autocommit=autocommit)
    except UsageError:
        raise
    except psycopg.Error as exc:
        raise ConnectError(
            f"cannot connect to {what} {url.redacted()}: {first_line(exc)}"
        ) from None
    try:
        with conn.cursor() as cur:
            for name, value in SESSION_SETTINGS.items():
                cur.execute("SELECT set_config(%s, %s, false)", (name, value))
        if not autocommit:
            conn.commit()
    except psycopg.Error as exc:
        conn.close()
        raise ConnectError(
            f"cannot set up session on {what} {url.redacted()}: {first_line(exc)}"
        ) from None
    return conn


def first_line(exc: BaseException) -> str:
    """The first non-empty line of ``exc``'s message, passwords redacted."""
    text = redact(str(exc)).strip()
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


_first_line = first_line
