"""Freeze the source database for the window so that nothing can write to it, and prove it.

A freeze that any session can undo (``SET default_transaction_read_only = off``,
``BEGIN READ WRITE``, ``PGOPTIONS``, a role setting) is a promise, not a freeze. This one takes
away the right to connect:

1. ``REVOKE CONNECT ON DATABASE`` from ``PUBLIC`` and from every role holding it (the owner
   included), except the freezing role itself. No non-superuser role can open a session on the
   database any more, whatever it sets; only superusers (who bypass privileges) and the
   freezer can. Who had ``CONNECT`` is recorded in the database's own setting
   ``dbsplit.frozen`` (one ``ALTER DATABASE ... SET``), so :func:`unfreeze` gives exactly them
   back, from any machine, even after the process that froze is gone.
2. ``default_transaction_read_only = on`` on the database, for the sessions that may still
   connect (a superuser's psql by habit), as a second line.
3. Every other client session on the database is terminated, and dbsplit waits until each is
   gone: a session opened before the freeze cannot write after it.

Then :func:`check` proves it, reading only: no role but superusers and the freezer can
connect, the read-only default is set and no role or role-in-database setting turns it off for
a role that can still connect, no other client session is on the database, no prepared
transaction waits there. ``dbsplit migrate`` and the deploy's cut-over run that check instead of
trusting that a freeze happened.

A superuser can still undo anything. That is caught by the **write position**
(:func:`write_position`): the per-table insert/update/delete counters of the statistics
system, each table's file node (a ``TRUNCATE`` or rewrite changes it) and every sequence's
value, digested. ``migrate`` records the position at its snapshot in both targets; verify and
the cut-over compare the position now with that one. Statistics are flushed when a session
ends, and the check requires that no other session is open, so an unchanged position with no
session left means no write since the snapshot (``track_counts`` must be on: the check says so
when it is off, and a statistics reset shows as a change).

Freezing needs a superuser, or the database's owner who is a member of
``pg_signal_backend`` (to end other roles' sessions); the checks run before anything changes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from dbsplit import watchdog
from dbsplit.connect import connect, first_line
from dbsplit.errors import SplitError, StateError, UsageError
from dbsplit.urls import PgUrl

#: The database setting that records who had CONNECT before the freeze.
FROZEN_SETTING = "dbsplit.frozen"
#: How long :func:`freeze` waits for terminated sessions to be gone.
TERMINATE_WAIT_SECONDS = 10.0
#: How long :func:`check` gives a session whose client has just left to end.
SETTLE_SECONDS = 3.0
PUBLIC = "PUBLIC"


@dataclass(frozen=True)
class FreezeCheck:
    """What :func:`check` found; ``ok`` when the database is frozen and nothing can write."""

    database: str
    frozen: bool
    problems: tuple[str, ...] = ()
    #: Roles (besides superusers) that can still connect: the freezer, when not a superuser.
    can_connect: tuple[str, ...] = ()
    position: WritePosition | None = None

    @property
    def ok(self) -> bool:
        return self.frozen and not self.problems

    def render(self) -> str:
        state = "frozen safely" if self.ok else ("frozen, unsafely" if self.frozen else "writable")
        return "\n".join(
            [f"database {self.database!r} is {state}"] + [f"  - {p}" for p in self.problems]
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "frozen": self.frozen,
            "ok": self.ok,
            "problems": list(self.problems),
            "can_connect": list(self.can_connect),
            "position": self.position.to_json() if self.position else None,
        }


@dataclass(frozen=True)
class FreezeState:
    """The outcome of :func:`freeze` or :func:`unfreeze`."""

    database: str
    frozen: bool
    changed: bool
    terminated: int
    check: FreezeCheck | None = None

    def render(self) -> str:
        state = "frozen (no role may connect but superusers)" if self.frozen else "writable"
        verb = "now" if self.changed else "already"
        extra = f"; {self.terminated} other session(s) terminated" if self.terminated else ""
        return f"database {self.database!r} is {verb} {state}{extra}"

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "frozen": self.frozen,
            "changed": self.changed,
            "terminated": self.terminated,
            "check": self.check.to_json() if self.check else None,
        }


@dataclass(frozen=True)
class WritePosition:
    """Where a database's writes stand: equal positions mean no write in between.

    ``digest`` covers every user table's insert/update/delete counters and file node and every
    sequence's value; ``writes`` is the sum of the counters (for messages), ``stats_reset`` when
    the statistics were last reset.
    """

    digest: str
    writes: int
    tables: int
    stats_reset: str | None
    track_counts: bool = True
    taken_at: float = field(default=0.0, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "writes": self.writes,
            "tables": self.tables,
            "stats_reset": self.stats_reset,
            "track_counts": self.track_counts,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WritePosition:
        return cls(
            digest=str(data["digest"]),
            writes=int(data["writes"]),
            tables=int(data["tables"]),
            stats_reset=data.get("stats_reset"),
            track_counts=bool(data.get("track_counts", True)),
        )

    def moved_since(self, earlier: WritePosition) -> str:
        """Why this position differs from ``earlier`` (``''`` when they are equal)."""
        if self == earlier:
            return ""
        if self.stats_reset != earlier.stats_reset:
            return "its statistics were reset, so its writes cannot be accounted for"
        if self.tables != earlier.tables:
            return f"its tables changed ({earlier.tables} then, {self.tables} now)"
        delta = self.writes - earlier.writes
        if delta:
            return f"{delta} row write(s) since"
        return "a table was truncated or rewritten, or a sequence moved, since"


# ----- the write position ----------------------------------------------------------------------

_POSITION = sql.SQL(
    """
WITH t AS (
    SELECT * FROM pg_stat_user_tables s
    WHERE s.schemaname <> ALL(%(skip)s) AND s.schemaname || '.' || s.relname <> ALL(%(tables)s)
)
SELECT current_setting('track_counts')::bool,
    (SELECT stats_reset::text FROM pg_stat_database WHERE datname = current_database()),
    (SELECT count(*) FROM t),
    (SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM t),
    md5(concat_ws('|',
      (SELECT string_agg(concat_ws(':', t.relid, pg_relation_filenode(t.relid), t.n_tup_ins,
                                   t.n_tup_upd, t.n_tup_del), ',' ORDER BY t.relid) FROM t),
      (SELECT string_agg(concat_ws(':', q.schemaname, q.sequencename, q.last_value), ','
                         ORDER BY q.schemaname, q.sequencename)
         FROM pg_sequences q WHERE q.schemaname <> ALL(%(skip)s))))
"""
)


def write_position(
    conn: psycopg.Connection[Any],
    *,
    skip_schemas: tuple[str, ...] = (),
    skip_tables: tuple[str, ...] = (),
) -> WritePosition:
    """The database's write position now, leaving out ``skip_schemas`` (dbsplit's own
    bookkeeping) and ``skip_tables`` (``schema.table``: each database's own migration history).

    Reads statistics views only. Inside a transaction the statistics are those of its first
    read (``stats_fetch_consistency``), so call it at the start of a transaction.
    """
    params = {"skip": list(skip_schemas), "tables": list(skip_tables)}
    row = conn.execute(_POSITION, params).fetchone()
    assert row is not None
    return WritePosition(
        digest=str(row[4]),
        writes=int(row[3]),
        tables=int(row[2]),
        stats_reset=row[1],
        track_counts=bool(row[0]),
        taken_at=time.time(),
    )


# ----- checking ---------------------------------------------------------------------------------


def check(
    conn: psycopg.Connection[Any],
    *,
    own_pids: tuple[int, ...] = (),
    settle: float = SETTLE_SECONDS,
) -> FreezeCheck:
    """Whether the current database is frozen so that nothing can write (reads only).

    ``own_pids`` are backends of the caller's own (dbsplit's workers), allowed to be there.
    A session whose client just left takes a moment to end: other sessions are looked for
    again for up to ``settle`` seconds before they count as a problem.
    """
    db = _one(conn, "SELECT current_database()")
    settings = _frozen_record(conn)
    read_only = bool(
        _one(
            conn,
            "SELECT EXISTS (SELECT 1 FROM pg_db_role_setting s JOIN pg_database d"
            " ON d.oid = s.setdatabase AND s.setrole = 0 WHERE d.datname = current_database()"
            " AND 'default_transaction_read_only=on' = ANY (s.setconfig))",
        )
    )
    frozen = settings is not None or read_only
    problems: list[str] = []
    if not frozen:
        return FreezeCheck(str(db), False, ("the database is not frozen",))
    if settings is None:
        problems.append(
            "only default_transaction_read_only is set, which any session can turn off:"
            " run dbsplit freeze again"
        )
    if not read_only:
        problems.append("default_transaction_read_only is not on for the database")
    can_connect = _roles_that_can_connect(conn)
    me = str(_one(conn, "SELECT current_user"))
    others = [r for r in can_connect if r != me]
    if others:
        problems.append(
            "role(s) " + ", ".join(others) + " can still connect (CONNECT was granted back?)"
        )
    for role, value in _read_write_overrides(conn):
        problems.append(
            f"role {role} has default_transaction_read_only={value} and can connect:"
            f" ALTER ROLE {role} RESET default_transaction_read_only"
        )
    for pid, user, app, state in _settled_sessions(conn, own_pids, settle):
        problems.append(
            f"another session is on the database: pid {pid}, role {user}"
            + (f", application {app!r}" if app else "")
            + f" ({state})"
        )
    for gid, owner in _prepared(conn):
        problems.append(
            f"prepared transaction {gid!r} of role {owner} is pending on the database:"
            " COMMIT PREPARED or ROLLBACK PREPARED it"
        )
    position = write_position(conn)
    if not position.track_counts:
        problems.append("track_counts is off: writes to the source cannot be detected")
    return FreezeCheck(str(db), True, tuple(problems), tuple(can_connect), position)


def _one(conn: psycopg.Connection[Any], query: str) -> Any:
    row = conn.execute(query.encode()).fetchone()
    assert row is not None
    return row[0]


def _frozen_record(conn: psycopg.Connection[Any]) -> list[str] | None:
    """Who had CONNECT before the freeze, from the database's ``dbsplit.frozen`` setting."""
    row = conn.execute(
        "SELECT s FROM pg_db_role_setting r JOIN pg_database d ON d.oid = r.setdatabase"
        " CROSS JOIN LATERAL unnest(r.setconfig) s"
        " WHERE d.datname = current_database() AND r.setrole = 0 AND s LIKE %s",
        (FROZEN_SETTING + "=%",),
    ).fetchone()
    if row is None:
        return None
    try:
        value = json.loads(str(row[0]).split("=", 1)[1])
    except ValueError:
        return []
    grantees = value.get("connect", []) if isinstance(value, dict) else []
    return [str(g) for g in grantees]


def _roles_that_can_connect(conn: psycopg.Connection[Any]) -> list[str]:
    """Login roles, superusers aside, that hold CONNECT on the database (directly, through a
    role they belong to, or through PUBLIC)."""
    rows = conn.execute(
        "SELECT rolname FROM pg_roles WHERE rolcanlogin AND NOT rolsuper"
        " AND has_database_privilege(oid, current_database(), 'CONNECT') ORDER BY 1"
    ).fetchall()
    return [str(r[0]) for r in rows]


def _read_write_overrides(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """Role and role-in-database settings that turn the read-only default off, for roles that
    can still connect (superusers, or roles holding CONNECT)."""
    rows = conn.execute(
        "SELECT DISTINCT ro.rolname, split_part(s, '=', 2)"
        " FROM pg_db_role_setting r JOIN pg_roles ro ON ro.oid = r.setrole"
        " CROSS JOIN LATERAL unnest(r.setconfig) s"
        " WHERE r.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname ="
        " current_database())) AND s LIKE 'default\\_transaction\\_read\\_only=%%'"
        " AND lower(split_part(s, '=', 2)) NOT IN ('on', 'true', '1', 'yes')"
        " AND (ro.rolsuper OR has_database_privilege(ro.oid, current_database(), 'CONNECT'))"
        " ORDER BY 1"
    ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def _other_sessions(
    conn: psycopg.Connection[Any], own_pids: tuple[int, ...]
) -> list[tuple[int, str, str, str]]:
    # This process's heartbeat session (read-only, SELECT 1) is dbsplit's own too.
    own_pids = (*own_pids, *watchdog.heartbeat_pids(conn))
    rows = conn.execute(
        "SELECT pid, coalesce(usename, '?'), coalesce(application_name, ''),"
        " coalesce(state, '?') FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND backend_type = 'client backend' AND pid <> ALL(%s) ORDER BY pid",
        (list(own_pids),),
    ).fetchall()
    return [(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]


def _settled_sessions(
    conn: psycopg.Connection[Any], own_pids: tuple[int, ...], settle: float
) -> list[tuple[int, str, str, str]]:
    deadline = time.monotonic() + settle
    while True:
        found = _other_sessions(conn, own_pids)
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)
        # Activity is read once per transaction: look again with fresh eyes.
        conn.execute("SELECT pg_stat_clear_snapshot()")


def _prepared(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT gid, owner FROM pg_prepared_xacts WHERE database = current_database() ORDER BY 1"
    ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def check_source(source: PgUrl) -> FreezeCheck:
    """:func:`check` on a new connection to ``source``."""
    with connect(source, what="source", autocommit=True, short_statements=True) as conn:
        return check(conn)


def require_frozen(conn: psycopg.Connection[Any], *, own_pids: tuple[int, ...] = ()) -> FreezeCheck:
    """:func:`check`, raising :class:`StateError` (exit 3) with every problem when not ok."""
    result = check(conn, own_pids=own_pids)
    if not result.ok:
        raise StateError(
            f"the source database {result.database!r} is not frozen safely: "
            + "; ".join(result.problems)
            + " (dbsplit freeze makes it so; --allow-writable-source skips this check)"
        )
    return result


# ----- freezing ---------------------------------------------------------------------------------


def freeze(source: PgUrl) -> FreezeState:
    """Freeze the source (see the module docstring), then :func:`check` it.

    Raises :class:`StateError` when the role cannot freeze (checked before any change), when a
    prepared transaction is pending, or when the check still finds a problem afterwards (the
    database then stays frozen: run ``dbsplit freeze`` again once the cause is gone).
    """
    dbname = _dbname(source)
    with connect(source, what="source", autocommit=True, short_statements=True) as conn:
        _writable_session(conn)
        _require_power(conn, dbname)
        prepared = _prepared(conn)
        if prepared:
            gid, owner = prepared[0]
            raise StateError(
                f"cannot freeze {dbname!r}: prepared transaction {gid!r} of role {owner} is"
                " pending on it (COMMIT PREPARED or ROLLBACK PREPARED it first)"
            )
        record = _frozen_record(conn)
        try:
            with conn.transaction():
                changed = _revoke_connect(conn, dbname, record)
        except psycopg.Error as exc:
            raise SplitError(
                f"cannot freeze source database {dbname!r}: {first_line(exc)}"
            ) from None
        terminated = _terminate_others(conn)
        result = check(conn)
    state = FreezeState(dbname, True, changed, terminated, result)
    if not result.ok:
        raise StateError(
            f"source database {dbname!r} is frozen but not safely: " + "; ".join(result.problems)
        )
    return state


def unfreeze(source: PgUrl) -> FreezeState:
    """Give ``CONNECT`` back to exactly the roles that had it, and make the database writable."""
    dbname = _dbname(source)
    with connect(source, what="source", autocommit=True, short_statements=True) as conn:
        _writable_session(conn)
        record = _frozen_record(conn)
        read_only = bool(
            _one(
                conn,
                "SELECT EXISTS (SELECT 1 FROM pg_db_role_setting s JOIN pg_database d"
                " ON d.oid = s.setdatabase AND s.setrole = 0"
                " WHERE d.datname = current_database()"
                " AND 'default_transaction_read_only=on' = ANY (s.setconfig))",
            )
        )
        if record is None and not read_only:
            return FreezeState(dbname, False, False, 0)
        db = sql.Identifier(dbname)
        try:
            with conn.transaction():
                for grantee in record or [PUBLIC]:
                    conn.execute(
                        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, _grantee(grantee))
                    )
                conn.execute(
                    sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(db)
                )
                conn.execute(sql.SQL("ALTER DATABASE {} RESET {}").format(db, _setting_name()))
        except psycopg.Error as exc:
            raise SplitError(
                f"cannot unfreeze source database {dbname!r}: {first_line(exc)}"
            ) from None
    return FreezeState(dbname, False, True, 0)


def _dbname(source: PgUrl) -> str:
    if not source.dbname:
        raise UsageError(f"source URL {source.redacted()} names no database")
    return source.dbname


def _writable_session(conn: psycopg.Connection[Any]) -> None:
    # Once frozen, this session itself starts read-only: the ALTERs below need it writable.
    conn.execute("SET default_transaction_read_only = off")


def _require_power(conn: psycopg.Connection[Any], dbname: str) -> None:
    """Refuse, before changing anything, a role that could not end every other session."""
    row = conn.execute(
        "SELECT r.rolsuper, d.datdba = r.oid,"
        " pg_has_role(r.oid, 'pg_signal_backend', 'MEMBER'),"
        " EXISTS (SELECT 1 FROM pg_stat_activity a JOIN pg_roles s ON s.rolname = a.usename"
        "   WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND s.rolsuper)"
        " FROM pg_roles r, pg_database d"
        " WHERE r.rolname = current_user AND d.datname = current_database()"
    ).fetchone()
    assert row is not None
    superuser, owner, signal, superuser_sessions = (bool(v) for v in row)
    if superuser:
        return
    if not owner:
        raise StateError(
            f"cannot freeze {dbname!r}: the role in the source URL is neither a superuser nor"
            " the database's owner (the deploy uses SOURCE_ADMIN_URL, a superuser)"
        )
    if not signal:
        raise StateError(
            f"cannot freeze {dbname!r}: the role in the source URL may not end other roles'"
            " sessions (grant it pg_signal_backend, or use a superuser)"
        )
    if superuser_sessions:
        raise StateError(
            f"cannot freeze {dbname!r}: a superuser session is on it, which only a superuser"
            " may end"
        )


def _setting_name() -> sql.Composable:
    return sql.Identifier(*FROZEN_SETTING.split("."))


def _grantee(name: str) -> sql.Composable:
    return sql.SQL("PUBLIC") if name == PUBLIC else sql.Identifier(name)


def _revoke_connect(conn: psycopg.Connection[Any], dbname: str, record: list[str] | None) -> bool:
    """Record who has CONNECT (first freeze only), take it from all but this role, set the
    read-only default. Returns whether anything changed."""
    rows = conn.execute(
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END"
        " FROM pg_database d"
        " CROSS JOIN LATERAL aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a"
        " WHERE d.datname = current_database() AND a.privilege_type = 'CONNECT'"
        " AND a.grantee <> (SELECT oid FROM pg_roles WHERE rolname = current_user)"
        " ORDER BY 1"
    ).fetchall()
    holders = [str(r[0]) for r in rows]
    db = sql.Identifier(dbname)
    changed = bool(holders) or record is None
    if record is None:
        value = json.dumps({"connect": holders, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ")})
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET {} = {}").format(db, _setting_name(), sql.Literal(value))
        )
    for holder in holders:
        conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(db, _grantee(holder)))
    conn.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(db))
    return changed


def _terminate_others(conn: psycopg.Connection[Any]) -> int:
    """End every other client session on the database and wait until each is gone."""
    deadline = time.monotonic() + TERMINATE_WAIT_SECONDS
    ended: set[int] = set()
    while True:
        pids = [p for p, *_ in _other_sessions(conn, ())]
        if not pids or time.monotonic() > deadline:
            return len(ended)
        for pid in pids:
            try:
                row = conn.execute("SELECT pg_terminate_backend(%s, %s)", (pid, 2000)).fetchone()
            except psycopg.Error:
                continue  # gone already, or not ours to end: check() reports what remains
            if row and row[0]:
                ended.add(pid)
        time.sleep(0.05)
