"""Schema objects for a target, taken from the source with ``pg_dump``, as pgcopydb does.

``pg_dump --section=pre-data`` and ``--section=post-data`` (plain format, ``--no-owner
--no-acl``, only the schemas routed to the target, under the copy's exported snapshot) give
the DDL. The text is split into its entries (``-- Name: ...; Type: ...`` headers) and:

- pre-data (extensions aside: types, domains, functions, sequences, tables with identity,
  generated and partitioned ones, views, materialized views, comments) runs in one target
  transaction, with schemas created by dbsplit (``CREATE SCHEMA`` entries are dropped);
- post-data is grouped: primary keys, unique constraints and indexes per table (groups run in
  parallel, each group in one transaction with its step record), then the rest (index
  attachments, triggers, rules, policies, comments) in one transaction. Foreign keys are left
  out (:mod:`dbsplit.finish` adds them NOT VALID, then validates, without the cross-database
  ones), and so are materialized view refreshes (:mod:`dbsplit.finish` refreshes them).

Everything is created by the connecting user, who owns it: no superuser needed.
:mod:`dbsplit.tailor` cuts the scripts to a target's resolution (objects created there too,
objects left out, and ``check_function_bodies``) before they are applied.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Any

import psycopg
from psycopg import sql

from dbsplit import pgtools, state, watchdog
from dbsplit.catalog import Catalog
from dbsplit.connect import LOCK_TIMEOUT, first_line
from dbsplit.errors import SplitError
from dbsplit.urls import PgUrl

_HEADER = re.compile(r"^-- Name: (?P<name>.*); Type: (?P<type>.*); Schema: (?P<schema>.*); Owner: ")
_TABLE_OF = (
    re.compile(r"^ALTER TABLE (?:ONLY )?(?P<t>\S+)", re.M),
    re.compile(r"^CREATE (?:UNIQUE )?INDEX \S+ ON (?:ONLY )?(?P<t>\S+)", re.M),
)
_PER_TABLE = frozenset({"CONSTRAINT", "INDEX"})
_LEFT_OUT = frozenset({"FK CONSTRAINT", "MATERIALIZED VIEW DATA", "SCHEMA"})


@dataclass(frozen=True)
class Entry:
    """One object's DDL from a dump."""

    type: str
    name: str
    schema: str
    sql: str


@dataclass(frozen=True)
class SchemaScripts:
    """The DDL for one target."""

    preamble: str
    pre_data: tuple[Entry, ...]
    #: ``(table, entries)``: primary keys, unique constraints and indexes of one table.
    post_groups: tuple[tuple[str, tuple[Entry, ...]], ...]
    post_rest: tuple[Entry, ...]


def dump(
    source: PgUrl,
    schemas: Sequence[str],
    *,
    pg_dump: pgtools.Tool,
    snapshot: str | None,
    source_major: int,
    exclude_tables: Sequence[str] = (),
) -> SchemaScripts:
    """Dump the pre-data and post-data DDL of ``schemas`` from ``source``, without the
    ``exclude_tables`` (``schema.table`` names)."""
    if pg_dump.major < source_major:
        raise SplitError(
            f"pg_dump {pg_dump.major} at {pg_dump.path!r} is older than the source server "
            f"({source_major}): pass --pg-dump with a newer one"
        )
    dbname, env = pgtools.child_args(source)
    texts = {}
    for section in ("pre-data", "post-data"):
        argv = [
            pg_dump.path,
            f"--dbname={dbname}",
            "--format=plain",
            f"--section={section}",
            "--no-owner",
            "--no-acl",
            "--no-publications",
            "--no-subscriptions",
            "--no-security-labels",
            "--no-tablespaces",
            f"--lock-wait-timeout={LOCK_TIMEOUT}",
            *(f"--schema={_pattern(s)}" for s in schemas),
            *(f"--exclude-table={_table_pattern(t)}" for t in exclude_tables),
        ]
        if snapshot:
            argv.append(f"--snapshot={snapshot}")
        texts[section] = pgtools.run(
            argv, env, what=f"the source's {section} section", server=source
        ).decode()
    preamble, pre = split_entries(texts["pre-data"])
    _, post = split_entries(texts["post-data"])
    return SchemaScripts(
        preamble=preamble,
        pre_data=tuple(e for e in pre if e.type not in _LEFT_OUT and not _is_schema_comment(e)),
        post_groups=_group(e for e in post if e.type in _PER_TABLE),
        post_rest=tuple(e for e in post if e.type not in _PER_TABLE | _LEFT_OUT),
    )


def _pattern(schema: str) -> str:
    # pg_dump patterns: quote to match the name exactly (no wildcard, no case folding).
    return '"' + schema.replace('"', '""') + '"'


def _table_pattern(qualname: str) -> str:
    schema, _, table = qualname.partition(".")
    return f"{_pattern(schema)}.{_pattern(table)}"


def _is_schema_comment(e: Entry) -> bool:
    return e.type == "COMMENT" and e.name.startswith("SCHEMA ")


def split_entries(text: str) -> tuple[str, list[Entry]]:
    """Split ``pg_dump`` plain output into its preamble and entries (psql meta-commands such
    as ``\\restrict`` are dropped)."""
    preamble: list[str] = []
    entries: list[Entry] = []
    current: dict[str, str] | None = None
    body: list[str] = []

    def flush() -> None:
        if current is not None:
            entries.append(Entry(current["type"], current["name"], current["schema"], _sql(body)))

    for line in text.splitlines():
        if line.startswith("\\"):
            continue
        m = _HEADER.match(line)
        if m:
            flush()
            current = m.groupdict()
            body = []
        elif current is None:
            preamble.append(line)
        else:
            body.append(line)
    flush()
    return _sql(preamble), entries


def _sql(lines: list[str]) -> str:
    kept = [
        portable
        for ln in lines
        if not (ln.startswith("--") and not ln.startswith("-- "))
        if (portable := portable_column_options(ln)) is not None
    ]
    return "\n".join(kept).strip() + "\n"


#: Per-column options every PostgreSQL from 15 to 17 accepts (``ALTER COLUMN ... SET (...)``).
COLUMN_OPTIONS = frozenset({"n_distinct", "n_distinct_inherited"})
_COLUMN_OPTIONS_RE = re.compile(
    r"^(?P<head>ALTER TABLE (?:ONLY )?\S+ ALTER COLUMN \S+ SET )\((?P<opts>[^()]*)\);$"
)


def portable_column_options(line: str) -> str | None:
    """``line`` with column options no target knows dropped (None: nothing left to set).

    Debian's PostgreSQL 15.20 stamps every column with an internal ``pg_attver`` option, which
    its ``pg_dump`` writes out and PostgreSQL 17 refuses ("unrecognized parameter"). Only the
    planner statistics options (:data:`COLUMN_OPTIONS`) carry meaning across servers.
    """
    m = _COLUMN_OPTIONS_RE.match(line)
    if m is None:
        return line
    kept = [
        opt.strip()
        for opt in m["opts"].split(",")
        if opt.split("=", 1)[0].strip() in COLUMN_OPTIONS
    ]
    return f"{m['head']}({', '.join(kept)});" if kept else None


def _group(entries: Any) -> tuple[tuple[str, tuple[Entry, ...]], ...]:
    groups: dict[str, list[Entry]] = {}
    for e in entries:
        key = next((m["t"] for rx in _TABLE_OF if (m := rx.search(e.sql))), e.name)
        groups.setdefault(key, []).append(e)
    return tuple((k, tuple(v)) for k, v in groups.items())


# ----- applying ----------------------------------------------------------------------------


def create_extensions(conn: psycopg.Connection[Any], names: Sequence[str], source: Catalog) -> None:
    """``CREATE EXTENSION IF NOT EXISTS`` each of ``names`` in its source schema."""
    where = {e.name: e.schema for e in source.extensions}
    for name in names:
        schema = where.get(name, "public")
        try:
            with conn.transaction():
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
                )
                conn.execute(
                    sql.SQL("CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}").format(
                        sql.Identifier(name), sql.Identifier(schema)
                    )
                )
        except psycopg.Error as exc:
            raise SplitError(
                f"cannot create extension {name!r} on the target: {_first(exc)}"
            ) from None


def apply_pre_data(
    conn: psycopg.Connection[Any], schemas: Sequence[str], scripts: SchemaScripts
) -> None:
    """Create the schemas and run the pre-data DDL, in one transaction with its step record."""
    with conn.transaction():
        for schema in schemas:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(scripts.preamble.encode())
        for e in scripts.pre_data:
            _run(conn, e)
        conn.execute("SELECT pg_catalog.set_config('search_path', '', false)")
        state.record_step(conn, state.STEP_PRE_DATA)


class PostData:
    """Runs a target's post-data DDL while the copy goes on.

    Per-table groups (primary key, unique constraints, indexes) start on ``jobs`` threads,
    each with its own connection from ``connect()``, as soon as :meth:`release` says the
    table's rows are all in; :meth:`finish` releases the rest, waits, then runs the remaining
    entries (index attachments, triggers, rules, comments...). Each group runs in one
    transaction with its step record, so a rerun skips what is done.
    """

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        scripts: SchemaScripts,
        done: frozenset[str],
        jobs: int,
    ) -> None:
        self._connect = connect
        self._scripts = scripts
        self._done = done
        self._pending = {k: es for k, es in scripts.post_groups if f"post-data:{k}" not in done}
        #: True until :meth:`finish`: rows are still being copied.
        self._copying = True
        self._queue: SimpleQueue[tuple[str, tuple[Entry, ...]] | None] = SimpleQueue()
        self._jobs = max(1, min(jobs, len(self._pending)))
        self._pool = ThreadPoolExecutor(self._jobs) if self._pending else None
        self._futures = (
            [self._pool.submit(self._work) for _ in range(self._jobs)] if self._pool else []
        )
        self._closed = False

    def release(self, qualname: str) -> None:
        """The rows of ``qualname`` (``schema.table``) are all copied: build its indexes."""
        key = pg_dump_name(qualname)
        entries = self._pending.pop(key, None)
        if entries is not None:
            self._queue.put((key, entries))

    def finish(self) -> None:
        """Run every remaining group, then the rest of the post-data, and wait for all."""
        self._copying = False
        for key in list(self._pending):
            self._queue.put((key, self._pending.pop(key)))
        self.close()
        if "post-data" not in self._done:
            with self._connect() as conn:
                conn.execute(self._scripts.preamble.encode())
                with conn.transaction():
                    for e in self._scripts.post_rest:
                        _run(conn, e)
                    state.record_step(conn, "post-data")

    def close(self) -> None:
        """Stop the threads once the queued groups are done; raise the first error."""
        if self._closed:
            return
        self._closed = True
        for _ in self._futures:
            self._queue.put(None)
        try:
            for fut in self._futures:
                fut.result()
        finally:
            if self._pool:
                self._pool.shutdown()

    def abort(self) -> None:
        """Stop after the groups already started (used when the copy failed)."""
        self._pending.clear()
        while True:
            try:
                self._queue.get_nowait()
            except Empty:
                break
        with contextlib.suppress(Exception):
            self.close()

    def _work(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        try:
            while (item := self._queue.get()) is not None:
                key, entries = item
                if conn is None:
                    conn = self._connect()
                    conn.execute(self._scripts.preamble.encode())
                    conn.execute(INDEX_BUILD_SETTINGS)
                conn.execute(SERIAL_BUILDS if self._copying else PARALLEL_BUILDS)
                with watchdog.doing(f"the keys and indexes of {key}"), conn.transaction():
                    for e in entries:
                        _run(conn, e)
                    state.record_step(conn, f"post-data:{key}")
        except BaseException:
            self._pending.clear()
            raise
        finally:
            if conn is not None:
                conn.close()


#: Index builds sort in memory up to this much per connection (the default is 64 MB); a 1 GB
#: DigitalOcean node runs ``jobs`` of them at once next to its 256 MB of shared buffers.
INDEX_BUILD_SETTINGS = b"SET maintenance_work_mem = '128MB'"
#: While rows are still being copied every core is busy: a parallel build's workers would
#: only add their coordination cost (measured: 40 % more CPU for the same index). Once the
#: copy is over, the builds left may use the idle cores.
SERIAL_BUILDS = b"SET max_parallel_maintenance_workers = 0"
PARALLEL_BUILDS = b"RESET max_parallel_maintenance_workers"

_PLAIN = re.compile(r"[a-z_][a-z0-9_$]*")


def pg_dump_name(qualname: str) -> str:
    """``schema.table`` as pg_dump writes it (quoted only where needed)."""
    return ".".join(
        p if _PLAIN.fullmatch(p) else '"' + p.replace('"', '""') + '"'
        for p in qualname.split(".", 1)
    )


def _run(conn: psycopg.Connection[Any], e: Entry) -> None:
    try:
        conn.execute(e.sql.encode())
    except psycopg.Error as exc:
        raise SplitError(
            f"cannot create {e.type.lower()} {e.schema}.{e.name} on the target: {_first(exc)}"
        ) from None


def _first(exc: BaseException) -> str:
    return first_line(exc)
