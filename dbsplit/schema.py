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
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Any

import psycopg
from psycopg import sql

from dbsplit import pgtools, state
from dbsplit.catalog import Catalog
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
            *(f"--schema={_pattern(s)}" for s in schemas),
            *(f"--exclude-table={_table_pattern(t)}" for t in exclude_tables),
        ]
        if snapshot:
            argv.append(f"--snapshot={snapshot}")
        texts[section] = pgtools.run(argv, env, what=f"the source's {section} section").decode()
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
    kept = [ln for ln in lines if not (ln.startswith("--") and not ln.startswith("-- "))]
    return "\n".join(kept).strip() + "\n"


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


def apply_post_data(
    connect: Callable[[], psycopg.Connection[Any]],
    scripts: SchemaScripts,
    done: frozenset[str],
    jobs: int,
    order: Sequence[str] = (),
) -> None:
    """Run the post-data DDL: per-table groups in parallel (``jobs`` connections made by
    ``connect()``, largest tables first as listed in ``order``), then the rest; each in one
    transaction with its step record."""
    todo = [(k, es) for k, es in scripts.post_groups if f"post-data:{k}" not in done]
    if order:
        rank = {name: i for i, name in enumerate(order)}
        todo.sort(key=lambda item: rank.get(item[0], len(rank)))
    queue: SimpleQueue[tuple[str, tuple[Entry, ...]]] = SimpleQueue()
    for item in todo:
        queue.put(item)

    def work() -> None:
        with connect() as conn:
            conn.execute(scripts.preamble.encode())
            while True:
                try:
                    key, entries = queue.get_nowait()
                except Empty:
                    return
                with conn.transaction():
                    for e in entries:
                        _run(conn, e)
                    state.record_step(conn, f"post-data:{key}")

    if todo:
        n = max(1, min(jobs, len(todo)))
        with ThreadPoolExecutor(n) as pool:
            for fut in [pool.submit(work) for _ in range(n)]:
                fut.result()
    if "post-data" not in done:
        with connect() as conn:
            conn.execute(scripts.preamble.encode())
            with conn.transaction():
                for e in scripts.post_rest:
                    _run(conn, e)
                state.record_step(conn, "post-data")


def _run(conn: psycopg.Connection[Any], e: Entry) -> None:
    try:
        conn.execute(e.sql.encode())
    except psycopg.Error as exc:
        raise SplitError(
            f"cannot create {e.type.lower()} {e.schema}.{e.name} on the target: {_first(exc)}"
        ) from None


def _first(exc: BaseException) -> str:
    from dbsplit.connect import first_line

    return first_line(exc)
