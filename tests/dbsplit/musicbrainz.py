"""The MusicBrainz schema (PyPI `mbdata`'s `mbdata/sql/`) loaded into a source, with rows.

Loaded the way MusicBrainz's own `InitDb.pl` orders its scripts (but its ICU collation is a
libc one: the stand-in PostgreSQL 17 has no ICU), by the database's owner, a
non-superuser (`mbowner`), as on a managed server: a superuser only creates the extensions
(`earthdistance` is not a trusted extension), and `Extensions.sql` then takes its documented
fallback for restricted servers (no C-language `immutable_unaccent`). The replication
(`dbmirror2`) scripts are not loaded.

Rows are generated inside the server, `ROWS` per table in foreign-key order, before the
foreign keys, indexes and triggers exist (as MusicBrainz imports its dumps), so every
constraint is checked when it is added: primary keys, unique indexes, checks, foreign keys.

Then the schema is reshaped the way the application that reported the bug had done it: the
editor (account) tables move to their own schema `editor` (`ALTER TABLE ... SET SCHEMA`), and
the database's `search_path` becomes `musicbrainz, editor, public`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mbdata
import psycopg
from psycopg import sql

SQL_DIR = Path(mbdata.__file__).parent / "sql"
OWNER = "mbowner"
OWNER_PASSWORD = "mb-Owner-pw-31c9"
#: Rows per table (fewer where a short key cannot hold more distinct values).
ROWS = 1500
#: Every schema of MusicBrainz that is loaded: the core and its satellites.
SCHEMAS = (
    "musicbrainz",
    "cover_art_archive",
    "event_art_archive",
    "statistics",
    "documentation",
    "wikidocs",
    "json_dump",
    "sitemaps",
    "report",
)
#: The folders of `mbdata/sql/` holding the satellites' scripts (the core's are at the top).
SATELLITES = ("caa", "eaa", "statistics", "documentation", "wikidocs", "json_dump", "sitemaps",
              "report")  # fmt: skip
SEARCH_PATH = "musicbrainz, editor, public"

#: PRIMARY gets the editor (account) tables; DATA every other schema.
ROUTING = '[routing]\nprimary = ["editor"]\n'
#: What `dbsplit plan` says to drop from DATA: each reads `editor` tables (PRIMARY) or is a
#: trigger on a DATA table calling one of those.
DROPS = [
    "musicbrainz.editor_sanitized",
    "musicbrainz.sanitize_editor",
    "musicbrainz.sanitize_editor_strict",
    "musicbrainz.sanitize_dbmirror2_editor_data",
    "musicbrainz.check_editor_name",
    "musicbrainz.del_collection_sub_on_delete",
    "musicbrainz.del_collection_sub_on_private",
    "musicbrainz.replace_old_sub_on_add",
    "musicbrainz.restore_collection_sub_on_public",
    "musicbrainz.delete_orphaned_recordings",
    "musicbrainz.track.remove_orphaned_tracks",
    "musicbrainz.inserting_edits_requires_confirmed_email_address",
    "musicbrainz.edit.inserting_edits_requires_confirmed_email_address",
]


def mbdata_version() -> str:
    """The installed ``mbdata`` version (pinned in pyproject's ``dev`` extras)."""
    from importlib.metadata import version

    return version("mbdata")


def split_toml(drops: list[str]) -> str:
    """The ``split.toml`` of the MusicBrainz split, with ``drops`` in ``[resolve] drop``."""
    names = ", ".join(f'"{d}"' for d in drops)
    return f"{ROUTING}\n[resolve]\ndrop = [{names}]\n"


def _script(path: Path) -> bytes:
    """A psql script without its meta-commands (``\\set ON_ERROR_STOP 1``)."""
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("\\")]
    return "\n".join(lines).encode()


def _run(conn: psycopg.Connection[Any], name: str, dirs: Iterable[str] = ("",)) -> None:
    for d in dirs:
        path = SQL_DIR / d / name if d else SQL_DIR / name
        if path.exists():
            conn.execute(b"SET search_path = musicbrainz, public")
            conn.execute(_script(path))


def load(conn: psycopg.Connection[Any], rows: int = ROWS) -> None:
    """Load the schema and rows into the (empty) database ``conn`` is connected to, as the
    superuser; everything but the extensions is created by :data:`OWNER`."""
    conn.execute(
        b"CREATE EXTENSION cube WITH SCHEMA public;"
        b" CREATE EXTENSION earthdistance WITH SCHEMA public;"
    )
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(OWNER)))
    for schema in SCHEMAS:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    sats = ["", *SATELLITES]
    # The stand-in PostgreSQL 17 targets are built without ICU: MusicBrainz's collation is
    # made with libc here (dbsplit refusing an ICU collation there has its own test).
    conn.execute(b"CREATE COLLATION musicbrainz.musicbrainz (provider = libc, locale = 'C')")
    _run(conn, "Extensions.sql")
    _run(conn, "CreateSearchConfiguration.sql")
    _run(conn, "CreateTypes.sql")
    _run(conn, "CreateTables.sql", sats)
    _run(conn, "CreateFunctions.sql", sats)
    _run(conn, "CreatePrimaryKeys.sql", sats)
    _run(conn, "CreateConstraints.sql")
    _run(conn, "CreateFKConstraints.sql", sats)
    fks = _take_foreign_keys(conn)
    generate_rows(conn, rows, fks)
    for fk in fks:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.SQL(fk.table),
                sql.Identifier(fk.name),
                sql.SQL(fk.definition),
            )
        )
    _run(conn, "CreateIndexes.sql", sats)
    _run(conn, "CreateSearchIndexes.sql")
    _run(conn, "CreateViews.sql", sats)
    _run(conn, "CreateTriggers.sql", sats)
    _reshape(conn)
    conn.execute(b"RESET ROLE")
    conn.execute(b"ANALYZE")


def _reshape(conn: psycopg.Connection[Any]) -> None:
    conn.execute(b"CREATE SCHEMA editor")
    names = conn.execute(
        b"SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        b" WHERE n.nspname = 'musicbrainz' AND c.relkind = 'r'"
        b" AND (c.relname LIKE 'editor%' OR c.relname = 'old_editor_name') ORDER BY 1"
    ).fetchall()
    for (name,) in names:
        conn.execute(
            sql.SQL("ALTER TABLE {} SET SCHEMA editor").format(sql.Identifier("musicbrainz", name))
        )
    dbname = conn.info.dbname
    conn.execute(
        sql.SQL("ALTER DATABASE {} SET search_path = {}").format(
            sql.Identifier(dbname), sql.SQL(SEARCH_PATH)
        )
    )


# ----- rows ----------------------------------------------------------------------------------

_FK_QUERY = b"""
SELECT con.conrelid::regclass::text, con.conname, pg_get_constraintdef(con.oid),
    con.conrelid, con.confrelid, con.conkey, con.confkey
FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace
WHERE con.contype = 'f' AND con.conparentid = 0 AND n.nspname = ANY(%s)
ORDER BY 1, 2
"""

_COLUMNS = b"""
SELECT c.oid, c.oid::regclass::text, a.attnum, a.attname, a.attnotnull, a.atthasdef,
    format_type(a.atttypid, a.atttypmod), t.typtype, t.typcategory,
    CASE WHEN a.atttypmod > 4 AND t.typcategory = 'S' THEN a.atttypmod - 4 END,
    EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'c'
            AND a.attnum = ANY(k.conkey)),
    EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique
            AND a.attnum = ANY(i.indkey))
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
WHERE (c.relkind = 'p' OR (c.relkind = 'r' AND NOT c.relispartition))
  AND n.nspname = ANY(%s)
ORDER BY c.oid, a.attnum
"""


@dataclass(frozen=True)
class _Fk:
    table: str
    name: str
    definition: str
    rel: int
    ref: int
    cols: tuple[int, ...]
    refcols: tuple[int, ...]


@dataclass(frozen=True)
class _Col:
    num: int
    name: str
    not_null: bool
    has_default: bool
    type: str
    typtype: str
    category: str
    length: int | None
    checked: bool
    unique: bool


def _take_foreign_keys(conn: psycopg.Connection[Any]) -> list[_Fk]:
    """Read and drop every foreign key (added back, so validated, once the rows are in)."""
    fks = [
        _Fk(r[0], r[1], r[2], r[3], r[4], tuple(r[5]), tuple(r[6]))
        for r in conn.execute(_FK_QUERY, (list(SCHEMAS),)).fetchall()
    ]
    for fk in fks:
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.SQL(fk.table), sql.Identifier(fk.name)
            )
        )
    return fks


def generate_rows(conn: psycopg.Connection[Any], rows: int, fks: list[_Fk]) -> None:
    """Insert up to ``rows`` generated rows into every table, parents first."""
    tables: dict[int, tuple[str, list[_Col]]] = {}
    for r in conn.execute(_COLUMNS, (list(SCHEMAS),)).fetchall():
        tables.setdefault(r[0], (r[1], []))[1].append(_Col(*r[2:]))
    checks = _read_checks(conn)
    for oid in _parents_first(tables, fks):
        _fill(conn, oid, _Tables(tables, fks, checks), rows)


@dataclass(frozen=True)
class _Tables:
    """What the generator knows: ``{oid: (name, columns)}``, the foreign keys, and
    ``{oid: [(check expression, its columns)]}``."""

    tables: dict[int, tuple[str, list[_Col]]]
    fks: list[_Fk]
    checks: dict[int, list[tuple[str, set[str]]]]


def _fill(conn: psycopg.Connection[Any], oid: int, known: _Tables, rows: int) -> None:
    """Insert the rows; a failing check leaves its nullable columns empty: all of them, or
    all but one (for "exactly one of" checks), until the check passes."""
    name, cols = known.tables[oid]
    nulls: frozenset[str] = frozenset()
    tried: dict[str, tuple[list[frozenset[str]], frozenset[str]]] = {}
    while True:
        try:
            conn.execute(_insert(oid, known, rows, nulls))
            return
        except psycopg.errors.CheckViolation as exc:
            check = exc.diag.constraint_name or ""
            if check not in tried:
                inside = _check_columns(conn, oid, check)
                nullable = sorted(c.name for c in cols if c.name in inside and not c.not_null)
                choices = [frozenset(nullable) - {keep} for keep in nullable]
                tried[check] = ([frozenset(nullable), *choices], frozenset(nullable))
            choices, involved = tried[check]
            if not choices:
                raise RuntimeError(f"cannot fill {name}: {exc}") from exc
            nulls = (nulls - involved) | choices.pop(0)


def _parents_first(tables: dict[int, Any], fks: list[_Fk]) -> list[int]:
    order: list[int] = []
    seen: set[int] = set()

    def visit(oid: int, path: frozenset[int]) -> None:
        if oid in seen or oid in path:
            return
        for fk in fks:
            if fk.rel == oid and fk.ref != oid:
                visit(fk.ref, path | {oid})
        seen.add(oid)
        order.append(oid)

    for oid in tables:
        visit(oid, frozenset())
    return order


def _read_checks(conn: psycopg.Connection[Any]) -> dict[int, list[tuple[str, set[str]]]]:
    rows = conn.execute(
        b"SELECT k.conrelid, substring(pg_get_constraintdef(k.oid) from 7),"
        b" array(SELECT a.attname FROM pg_attribute a"
        b"       WHERE a.attrelid = k.conrelid AND a.attnum = ANY(k.conkey))"
        b" FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace"
        b" WHERE k.contype = 'c' AND n.nspname = ANY(%s)",
        (list(SCHEMAS),),
    ).fetchall()
    checks: dict[int, list[tuple[str, set[str]]]] = {}
    for oid, expr, cols in rows:
        checks.setdefault(oid, []).append((expr, set(cols)))
    return checks


def _check_columns(conn: psycopg.Connection[Any], oid: int, constraint: str) -> set[str]:
    rows = conn.execute(
        b"SELECT a.attname FROM pg_constraint k JOIN pg_attribute a"
        b" ON a.attrelid = k.conrelid AND a.attnum = ANY(k.conkey)"
        b" WHERE k.conrelid = %s AND k.conname = %s",
        (oid, constraint),
    ).fetchall()
    return {r[0] for r in rows}


def _insert(oid: int, known: _Tables, rows: int, nulls: frozenset[str]) -> sql.Composed:
    """``INSERT ... SELECT`` of ``rows`` generated rows (foreign keys pick existing keys, rows
    the table's checks would refuse are left out); ``nulls`` are left empty."""
    tables, fks = known.tables, known.fks
    name, cols = tables[oid]
    byname = {c.num: c for c in cols}
    joins: list[sql.Composable] = []
    values: dict[str, sql.Composable] = {}
    for i, fk in enumerate(fk for fk in fks if fk.rel == oid and fk.ref != oid):
        ref_name, ref_cols = tables[fk.ref]
        ref_by_num = {c.num: c for c in ref_cols}
        keys = [sql.Identifier(ref_by_num[n].name) for n in fk.refcols]
        alias = f"p{i}"
        aggs = sql.SQL(", ").join(
            sql.SQL("array_agg({} ORDER BY {}) AS {}").format(
                k, sql.SQL(", ").join(keys), sql.Identifier(f"k{j}")
            )
            for j, k in enumerate(keys)
        )
        joins.append(
            sql.SQL(
                " CROSS JOIN (SELECT {} FROM (SELECT DISTINCT {} FROM {} WHERE {}) s) {}"
            ).format(
                aggs,
                sql.SQL(", ").join(keys),
                sql.SQL(ref_name),
                sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(k) for k in keys),
                sql.Identifier(alias),
            )
        )
        # A second key into the same table points one row further (entity0 != entity1).
        shift = sum(1 for seen in fks[: fks.index(fk)] if seen.rel == oid and seen.ref == fk.ref)
        for j, n in enumerate(fk.cols):
            values[byname[n].name] = sql.SQL(
                "{a}[1 + (g - 1 + {s}) % greatest(cardinality({a}), 1)]"
            ).format(a=sql.Identifier(alias, f"k{j}"), s=sql.Literal(shift))
    for fk in fks:  # a key into the same table: left empty when it may be
        if fk.rel == oid and fk.ref == oid:
            for n in fk.cols:
                if not byname[n].not_null:
                    nulls = nulls | {byname[n].name}
    limit = rows
    for c in cols:
        if c.length is not None and c.name not in values:
            limit = min(limit, 26**c.length - 1)
    names: list[sql.Composable] = []
    present: set[str] = set()
    exprs: list[sql.Composable] = []
    for c in cols:
        expr = values.get(c.name) or _value(name, c)
        if c.name in nulls:
            expr = sql.SQL("NULL::{}").format(sql.SQL(c.type))
        if expr is None:
            continue
        names.append(sql.Identifier(c.name))
        present.add(c.name)
        exprs.append(expr)
    checks = [
        sql.SQL("({}) IS NOT FALSE").format(sql.SQL(expr))
        for expr, used in known.checks.get(oid, [])
        if used <= present
    ]
    return sql.SQL(
        "INSERT INTO {t} ({n}) SELECT {n} FROM (SELECT {e} FROM generate_series(1, {r}) AS g{j})"
        " AS s({n}) WHERE {w}"
    ).format(
        t=sql.SQL(name),
        n=sql.SQL(", ").join(names),
        e=sql.SQL(", ").join(exprs),
        r=sql.Literal(limit),
        j=sql.Composed(joins),
        w=sql.SQL(" AND ").join(checks) if checks else sql.SQL("true"),
    )


#: Values MusicBrainz's checks ask for, by column name (for NOT NULL checked columns).
OVERRIDES: dict[str, str] = {
    "ipi": "lpad(g::text, 11, '0')",
    "isni": "lpad(g::text, 16, '0')",
    "isrc": "'AAAAA' || lpad(g::text, 7, '0')",
    "status": "1 + g % 6",
    "vote": "g % 3 - 1",
    "entity_type": "(ARRAY['artist', 'event', 'recording', 'series', 'work'])[1 + g % 5]",
}


def _value(table: str, c: _Col) -> sql.Composable | None:
    key = f"{table}.{c.name}"
    if c.name in OVERRIDES and c.not_null and c.checked:
        return sql.SQL(OVERRIDES[c.name])
    if c.has_default and c.not_null and not c.unique:
        return None
    t = c.type
    if t in ("integer", "bigint") or t.startswith("numeric"):
        return sql.SQL("g::{}").format(sql.SQL(t))
    if t == "smallint":
        return sql.SQL("(g % 30000)::smallint")
    if c.category == "S":
        if c.length is not None and c.length < 5:
            # Distinct letters (`AA`, `BA`...): short codes are often unique.
            letters = sql.SQL(" || ").join(
                sql.SQL("chr(65 + (g / {}) % 26)").format(sql.Literal(26**i))
                for i in range(c.length)
            )
            return sql.SQL("({})::{}").format(letters, sql.SQL(t))
        if c.length is not None:
            return sql.SQL("right('x' || g, {})::{}").format(sql.Literal(c.length), sql.SQL(t))
        return sql.SQL("({} || g)::{}").format(sql.Literal(c.name + " "), sql.SQL(t))
    if t == "uuid":
        return sql.SQL("md5({} || g)::uuid").format(sql.Literal(key))
    if t == "boolean":
        return sql.SQL("g % 2 = 0")
    if t == "date":
        return sql.SQL("date '2000-01-01' + g")
    if t.startswith("timestamp"):
        return sql.SQL("(timestamptz '2020-01-01 00:00:00+00' + g * interval '1 hour')::{}").format(
            sql.SQL(t)
        )
    if t == "interval":
        return sql.SQL("g * interval '1 minute'")
    if t in ("jsonb", "json"):
        return sql.SQL("jsonb_build_object('n', g)::{}").format(sql.SQL(t))
    if c.typtype == "e":
        return sql.SQL(
            "(enum_range(NULL::{t}))[1 + g % cardinality(enum_range(NULL::{t}))]"
        ).format(t=sql.SQL(t))
    if c.category == "A":
        return sql.SQL("'{{}}'::{}").format(sql.SQL(t))
    if t == "bytea":
        return sql.SQL("decode(md5(g::text), 'hex')")
    if t in ("real", "double precision"):
        return sql.SQL("(g / 7.0)::{}").format(sql.SQL(t))
    if not c.not_null:
        return None
    raise ValueError(f"no generator for {key} of type {t}")
