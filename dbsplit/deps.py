"""The dependency finder: which schema object uses which, read from the source's catalog.

:func:`read_graph` returns an :class:`ObjectGraph`: every dependency between two user objects
(views, materialized views, functions, procedures, triggers, column defaults, check
constraints, indexes, tables' column types, types, domains, collations, text search
configurations and dictionaries, sequences) and on extensions. Two sources, and how sure each
is (``Edge.how``):

``catalog``
    ``pg_depend``, exact: views and materialized views (their rewrite rule), ``BEGIN ATOMIC``
    SQL function bodies, function signatures, triggers, defaults, check constraints, indexes,
    column types and collations, domains, composite types.
``body``
    the names a SQL-language (string body) or PL/pgSQL function mentions, which PostgreSQL does
    not record (:mod:`dbsplit.bodies`: what it reads, and what it cannot see), resolved through
    the search path the function runs with: its own ``SET search_path``, else the database's,
    else ``public``. A column that shares a table's name is not taken for the table.

It also reads what decides how a target can take each object: functions in untrusted
languages, ICU collations, the sequences columns own, and the functions whose bodies name
anything but built-ins (:attr:`ObjectGraph.unchecked`). :func:`read_abilities` reads the other
side, what a target's user can create.

Example::

    >>> graph = read_graph(conn)
    >>> [(e.dependent.display, e.referenced.display, e.how) for e in graph.edges][:1]
    [('view musicbrainz.editor_sanitized', 'table editor.editor', 'catalog')]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import psycopg

from dbsplit.bodies import BodyName, body_names, search_path
from dbsplit.catalog import BOOKKEEPING_SCHEMA

#: Object kinds a target can hold a copy of (created on both targets when both need them).
COPYABLE = frozenset(
    {
        "type",
        "domain",
        "collation",
        "text search configuration",
        "text search dictionary",
        "function",
        "procedure",
        "aggregate",
        "sequence",
    }
)
#: Object kinds ``[resolve] drop`` may leave out of their target.
DROPPABLE = frozenset(
    {
        "view",
        "materialized view",
        "function",
        "procedure",
        "aggregate",
        "trigger",
        "collation",
        "text search configuration",
    }
)


@dataclass(frozen=True, order=True)
class Obj:
    """One schema object. ``name`` is ``pg_dump``'s: ``f(integer, text)`` for a function.

    Triggers, defaults, check constraints, indexes and rules belong to ``table`` (``schema``
    is the table's); a default's ``name`` is its column. Extensions have no schema.
    """

    kind: str
    schema: str
    name: str
    table: str = ""

    @property
    def qualname(self) -> str:
        """``schema.name``, ``schema.table.name`` for an object of a table, or the name of an
        extension: what ``[resolve] drop`` and the reports call it."""
        if self.kind == "extension":
            return self.name
        if self.table:
            return f"{self.schema}.{self.table}.{self.name}"
        return f"{self.schema}.{self.name}"

    @property
    def display(self) -> str:
        return f"{self.kind} {self.qualname}"

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.qualname}


@dataclass(frozen=True, order=True)
class Edge:
    """``dependent`` uses ``referenced``; ``how`` is ``catalog`` (exact) or ``body``."""

    dependent: Obj
    referenced: Obj
    how: str = "catalog"


@dataclass(frozen=True)
class ObjectGraph:
    """The source's objects and their dependencies."""

    edges: tuple[Edge, ...] = ()
    #: Every object that may be named in ``[resolve] drop`` (views, functions, triggers...).
    droppable: frozenset[Obj] = frozenset()
    #: Functions in a language only a superuser may use (``c``, ``internal``, ``plpython3u``).
    untrusted: frozenset[Obj] = frozenset()
    #: Collations of the ICU provider.
    icu: frozenset[Obj] = frozenset()
    #: ``sequence -> table`` for sequences owned by a column.
    owned_by: Mapping[Obj, Obj] = field(default_factory=dict)
    #: SQL and PL/pgSQL functions whose bodies name anything but PostgreSQL's built-ins: their
    #: creation could not check them (pg_dump may create them before what they name, and runs
    #: with an empty search path), so they are created with ``check_function_bodies = off``.
    unchecked: frozenset[Obj] = frozenset()

    def uses(self, obj: Obj) -> tuple[Edge, ...]:
        """The edges from ``obj``."""
        return self._out.get(obj, ())

    @cached_property
    def _out(self) -> dict[Obj, tuple[Edge, ...]]:
        out: dict[Obj, list[Edge]] = {}
        for e in self.edges:
            out.setdefault(e.dependent, []).append(e)
        return {k: tuple(v) for k, v in out.items()}

    def dependents(self) -> tuple[Obj, ...]:
        """Every object that uses another, in a stable order."""
        return tuple(sorted(self._out))


@dataclass(frozen=True)
class Abilities:
    """What a target's server and user can create (:func:`read_abilities`)."""

    superuser: bool = True
    #: False for a server built without ICU: initdb imported no ``*-x-icu`` collation (the
    #: built-in ``unicode`` collation is there either way).
    icu: bool = True
    #: ``{extension: trusted}`` for every extension the server offers.
    available: Mapping[str, bool] = field(default_factory=dict)
    installed: frozenset[str] = frozenset()


def read_abilities(conn: psycopg.Connection[Any]) -> Abilities:
    """Read what the user of ``conn`` can create on its server."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),"
            " EXISTS (SELECT 1 FROM pg_collation WHERE collprovider = 'i'"
            " AND collname LIKE '%-x-icu')"
        )
        row = cur.fetchone()
        assert row is not None
        cur.execute(
            "SELECT name, bool_or(trusted) FROM pg_available_extension_versions GROUP BY name"
        )
        available = {str(r[0]): bool(r[1]) for r in cur.fetchall()}
        cur.execute("SELECT extname FROM pg_extension")
        installed = frozenset(str(r[0]) for r in cur.fetchall())
    return Abilities(bool(row[0]), bool(row[1]), available, installed)


# ----- reading -------------------------------------------------------------------------------


def read_graph(conn: psycopg.Connection[Any]) -> ObjectGraph:
    """Read the dependency graph of the database ``conn`` is connected to (catalog queries
    only; the transaction is left as it was, the search path restored)."""
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('search_path'), set_config('search_path', '', false)")
        row = cur.fetchone()
        assert row is not None
        try:
            return _Reader(cur).graph()
        finally:
            cur.execute("SELECT set_config('search_path', %s, false)", (row[0],))


_CLASS = {
    "pg_class": "'pg_class'::regclass::oid",
    "pg_proc": "'pg_proc'::regclass::oid",
    "pg_type": "'pg_type'::regclass::oid",
    "pg_collation": "'pg_collation'::regclass::oid",
    "pg_ts_config": "'pg_ts_config'::regclass::oid",
    "pg_ts_dict": "'pg_ts_dict'::regclass::oid",
    "pg_trigger": "'pg_trigger'::regclass::oid",
    "pg_attrdef": "'pg_attrdef'::regclass::oid",
    "pg_constraint": "'pg_constraint'::regclass::oid",
    "pg_rewrite": "'pg_rewrite'::regclass::oid",
    "pg_extension": "'pg_extension'::regclass::oid",
}

_HIDDEN = ["pg_catalog", "information_schema", "pg_toast", BOOKKEEPING_SCHEMA]
_NS = "n.nspname <> ALL(%(hidden)s) AND n.nspname NOT LIKE 'pg\\_%%'"

_QUERIES = {
    "classes": f"""
        SELECT c.oid, c.relkind, n.nspname, c.relname, tc.relname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_index i ON i.indexrelid = c.oid
        LEFT JOIN pg_class tc ON tc.oid = i.indrelid
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'i', 'I', 'c', 'f') AND {_NS}""",
    "procs": f"""
        SELECT p.oid, p.prokind, n.nspname,
            p.proname || '(' || coalesce((
                SELECT string_agg(format_type(t.oid, NULL), ', ' ORDER BY a.ord)
                FROM unnest(p.proargtypes) WITH ORDINALITY AS a(typ, ord)
                JOIN pg_type t ON t.oid = a.typ), '') || ')',
            p.proname, l.lanname, l.lanpltrusted, p.prosqlbody IS NOT NULL,
            CASE WHEN l.lanname IN ('sql', 'plpgsql') THEN p.prosrc END,
            (SELECT substring(c FROM 13) FROM unnest(p.proconfig) AS c
             WHERE c LIKE 'search_path=%%')
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        JOIN pg_language l ON l.oid = p.prolang
        WHERE {_NS}""",
    "types": f"""
        SELECT t.oid, t.typtype, n.nspname, t.typname, t.typrelid, rc.relkind,
            CASE WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN t.typelem END
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        LEFT JOIN pg_class rc ON rc.oid = t.typrelid
        WHERE {_NS}""",
    "collations": f"""
        SELECT c.oid, n.nspname, c.collname, c.collprovider = 'i'
        FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace WHERE {_NS}""",
    "ts_configs": f"""
        SELECT c.oid, n.nspname, c.cfgname
        FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace WHERE {_NS}""",
    "ts_dicts": f"""
        SELECT d.oid, n.nspname, d.dictname
        FROM pg_ts_dict d JOIN pg_namespace n ON n.oid = d.dictnamespace WHERE {_NS}""",
    "triggers": """
        SELECT tg.oid, tg.tgrelid, tg.tgname FROM pg_trigger tg WHERE NOT tg.tgisinternal""",
    "attrdefs": """
        SELECT ad.oid, ad.adrelid, a.attname FROM pg_attrdef ad
        JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum""",
    "constraints": """
        SELECT con.oid, con.contype, con.conrelid, con.contypid, con.conname
        FROM pg_constraint con WHERE con.contype = 'c'""",
    "rules": """SELECT r.oid, r.ev_class, r.rulename FROM pg_rewrite r""",
    "members": """
        SELECT d.classid, d.objid, e.extname
        FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
        WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'""",
    "depend": """
        SELECT d.classid, d.objid, d.objsubid, d.refclassid, d.refobjid, d.deptype
        FROM pg_depend d
        WHERE d.deptype IN ('n', 'a') AND d.objid >= 16384
          AND d.classid IN (
            'pg_class'::regclass, 'pg_proc'::regclass, 'pg_type'::regclass,
            'pg_trigger'::regclass, 'pg_attrdef'::regclass, 'pg_constraint'::regclass,
            'pg_rewrite'::regclass, 'pg_ts_config'::regclass)""",
    "builtins": """
        SELECT proname FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace
        UNION SELECT typname FROM pg_type WHERE typnamespace = 'pg_catalog'::regnamespace
        UNION SELECT relname FROM pg_class
        WHERE relnamespace IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
        UNION SELECT word FROM pg_get_keywords() WHERE catcode <> 'U'""",
    "search_path": """
        SELECT (SELECT substring(c FROM 13) FROM unnest(s.setconfig) AS c
                WHERE c LIKE 'search_path=%%')
        FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
        WHERE d.datname = current_database() AND s.setrole = 0""",
    "oids": "SELECT " + ", ".join(_CLASS.values()),
}

_REL_KIND = {
    "r": "table",
    "p": "table",
    "f": "table",
    "v": "view",
    "m": "materialized view",
    "S": "sequence",
    "c": "type",
}
_PROC_KIND = {"f": "function", "w": "function", "p": "procedure", "a": "aggregate"}


class _Reader:
    def __init__(self, cur: psycopg.Cursor[Any]) -> None:
        self.cur = cur
        self.units: dict[tuple[int, int], Obj] = {}
        self.relations: dict[int, Obj] = {}
        self.members: dict[tuple[int, int], Obj] = {}
        #: ``(schema, name) -> extension`` for the relations, functions and types of extensions.
        self.member_names: dict[tuple[str, str], Obj] = {}

    def rows(self, name: str) -> list[tuple[Any, ...]]:
        self.cur.execute(_QUERIES[name], {"hidden": _HIDDEN})
        return self.cur.fetchall()

    def graph(self) -> ObjectGraph:
        c = dict(zip(_CLASS, self.rows("oids")[0], strict=True))
        self.members = {(r[0], r[1]): Obj("extension", "", r[2]) for r in self.rows("members")}
        units = self.units
        self._relations(c["pg_class"])
        untrusted, bodies = self._procs(c["pg_proc"])
        self._types(c["pg_type"])
        icu: set[Obj] = set()
        for oid, schema, name, is_icu in self.rows("collations"):
            obj = self.members.get((c["pg_collation"], oid), Obj("collation", schema, name))
            units[c["pg_collation"], oid] = obj
            if is_icu and obj.kind == "collation":
                icu.add(obj)
        for q, cls, kind in (
            ("ts_configs", "pg_ts_config", "text search configuration"),
            ("ts_dicts", "pg_ts_dict", "text search dictionary"),
        ):
            for oid, schema, name in self.rows(q):
                units[c[cls], oid] = self.members.get((c[cls], oid), Obj(kind, schema, name))
        self._owned("triggers", c["pg_trigger"], "trigger")
        self._owned("attrdefs", c["pg_attrdef"], "default")
        for oid, _, relid, typid, name in self.rows("constraints"):
            if relid and relid in self.relations:
                t = self.relations[relid]
                units[c["pg_constraint"], oid] = Obj("check constraint", t.schema, name, t.name)
            elif typid and (c["pg_type"], typid) in units:
                units[c["pg_constraint"], oid] = units[c["pg_type"], typid]
        for oid, relid, name in self.rows("rules"):
            if relid in self.relations:
                rel = self.relations[relid]
                units[c["pg_rewrite"], oid] = (
                    rel if name == "_RETURN" else Obj("rule", rel.schema, name, rel.name)
                )
        edges, owned_by = self._edges(c)
        db_path = next((r[0] for r in self.rows("search_path") if r[0]), None)
        body_edges = _body_edges(bodies, units.values(), db_path, self.member_names)
        schemas = {u.schema for u in units.values()} | {s for s, _ in self.member_names}
        all_edges = sorted(set(edges) | set(body_edges))
        return ObjectGraph(
            edges=tuple(all_edges),
            droppable=frozenset(u for u in units.values() if u.kind in DROPPABLE),
            untrusted=frozenset(untrusted),
            icu=frozenset(icu),
            owned_by=owned_by,
            unchecked=_unchecked(bodies, {r[0] for r in self.rows("builtins")}, schemas),
        )

    def _member(self, key: tuple[int, int], obj: Obj, schema: str, name: str) -> Obj:
        """``obj``, or the extension it belongs to (remembering its name for bodies)."""
        ext = self.members.get(key)
        if ext is None:
            return obj
        self.member_names[schema, name] = ext
        return ext

    def _relations(self, cls: int) -> None:
        for oid, kind, schema, name, table in self.rows("classes"):
            if kind in ("i", "I"):
                obj = Obj("index", schema, name, table or "")
            else:
                obj = Obj(_REL_KIND[kind], schema, name)
            self.units[cls, oid] = self.relations[oid] = self._member((cls, oid), obj, schema, name)

    def _procs(self, cls: int) -> tuple[set[Obj], list[tuple[Obj, str, str | None]]]:
        untrusted: set[Obj] = set()
        bodies: list[tuple[Obj, str, str | None]] = []
        for oid, kind, schema, dump_name, bare, _, trusted, atomic, src, path in self.rows("procs"):
            obj = Obj(_PROC_KIND.get(kind, "function"), schema, dump_name)
            self.units[cls, oid] = self._member((cls, oid), obj, schema, bare)
            if self.units[cls, oid] != obj:
                continue
            if not trusted and obj.kind != "aggregate":  # CREATE AGGREGATE needs no language
                untrusted.add(obj)
            if src is not None and not atomic:
                bodies.append((obj, src, path))
        return untrusted, bodies

    def _types(self, cls: int) -> None:
        arrays: dict[int, int] = {}
        for oid, typtype, schema, name, relid, relkind, elem in self.rows("types"):
            key = (cls, oid)
            if key in self.members:
                self.units[key] = self._member(key, Obj("type", schema, name), schema, name)
            elif elem is not None:
                arrays[oid] = elem
            elif relid and relkind != "c":
                if relid in self.relations:  # a table's row type is the table
                    self.units[key] = self.relations[relid]
            else:
                self.units[key] = Obj("domain" if typtype == "d" else "type", schema, name)
        for oid, elem in arrays.items():
            if (cls, elem) in self.units:
                self.units[cls, oid] = self.units[cls, elem]

    def _owned(self, query: str, cls: int, kind: str) -> None:
        for oid, relid, name in self.rows(query):
            t = self.relations.get(relid)
            if t is not None and t.kind != "extension":
                self.units[cls, oid] = Obj(kind, t.schema, name, t.name)

    def _edges(self, c: dict[str, int]) -> tuple[list[Edge], dict[Obj, Obj]]:
        edges: list[Edge] = []
        owned_by: dict[Obj, Obj] = {}
        units = self.units
        for cls, oid, _subid, refcls, refoid, deptype in self.rows("depend"):
            dep = units.get((cls, oid))
            ref = units.get((refcls, refoid))
            if dep is None or ref is None or dep == ref or dep.kind == "extension":
                continue
            if dep.kind == "sequence" and ref.kind == "table" and deptype == "a":
                owned_by[dep] = ref
                continue
            if _same_table(dep, ref) or ref.kind in _NEVER_REFERENCED:
                continue
            if dep.kind == "table" and ref.kind == "table":
                continue  # partitions and inheritance: routed with their schema
            edges.append(Edge(dep, ref))
        return edges, owned_by


#: Objects that belong to a table and are never what another object depends on by itself.
_NEVER_REFERENCED = frozenset({"index", "default", "trigger", "check constraint", "rule"})


def _same_table(dep: Obj, ref: Obj) -> bool:
    return bool(dep.table) and ref.schema == dep.schema and ref.name == dep.table


# ----- function bodies -----------------------------------------------------------------------

_RELATION_KINDS = frozenset({"table", "view", "materialized view", "sequence"})
_FUNCTION_KINDS = frozenset({"function", "procedure", "aggregate"})
_TYPE_KINDS = frozenset({"type", "domain", "table", "view"})


def _body_edges(
    bodies: list[tuple[Obj, str, str | None]],
    objects: Iterable[Obj],
    db_path: str | None,
    members: Mapping[tuple[str, str], Obj],
) -> list[Edge]:
    by_name: dict[tuple[str, str], list[Obj]] = {k: [v] for k, v in members.items()}
    for o in set(objects):
        if o.kind == "extension" or o.table:
            continue
        bare = o.name.split("(", 1)[0] if o.kind in _FUNCTION_KINDS else o.name
        by_name.setdefault((o.schema, bare), []).append(o)
    edges: list[Edge] = []
    for fn, src, fn_path in bodies:
        path = search_path(fn_path or db_path or "public")
        for bn in body_names(src):
            for ref in _lookup(bn, path, by_name):
                if ref != fn:
                    edges.append(Edge(fn, ref, "body"))
    return edges


def _unchecked(
    bodies: list[tuple[Obj, str, str | None]], builtins: set[str], schemas: set[str]
) -> frozenset[Obj]:
    """The functions whose bodies name something other than a built-in: a name qualified
    with a user schema, or an unqualified relation, function or type PostgreSQL lacks."""
    out = set()
    for fn, src, _ in bodies:
        for bn in body_names(src):
            if bn.schema in schemas if bn.schema else bn.name not in builtins:
                out.add(fn)
                break
    return frozenset(out)


def _lookup(bn: BodyName, path: list[str], by_name: dict[tuple[str, str], list[Obj]]) -> list[Obj]:
    kinds = {
        "relation": _RELATION_KINDS,
        "function": _FUNCTION_KINDS,
        "type": _TYPE_KINDS,
    }.get(bn.role)
    for schema in [bn.schema] if bn.schema else path:
        found = [
            o
            for o in by_name.get((schema, bn.name), [])
            if kinds is None or o.kind in kinds or o.kind == "extension"
        ]
        if found:
            return sorted(found)
    return []
