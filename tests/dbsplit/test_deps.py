"""The dependency finder as data: small schemas, and the dependencies each must yield.

Each case is loaded into its own fresh PostgreSQL 15 database and read with
`dbsplit.deps.read_graph`; the edges between objects of different schemas (and to extensions)
must be exactly the expected ones, `how` included (`catalog`: pg_depend; `body`: names read in
a function body).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dbsplit.bodies import body_names
from dbsplit.deps import read_graph
from standins.postgres import PostgresServer

Dep = tuple[str, str, str]  # (dependent display, referenced display, how)

SCHEMAS = "CREATE SCHEMA a; CREATE SCHEMA b;"
CASES: dict[str, tuple[str, set[Dep]]] = {
    "view reads a table": (
        "CREATE TABLE a.t (id int); CREATE VIEW b.v AS SELECT id FROM a.t;",
        {("view b.v", "table a.t", "catalog")},
    ),
    "materialized view reads a view": (
        "CREATE TABLE a.t (id int); CREATE VIEW a.v AS SELECT id FROM a.t;"
        " CREATE MATERIALIZED VIEW b.m AS SELECT id FROM a.v;",
        {("materialized view b.m", "view a.v", "catalog")},
    ),
    "begin atomic body reads a table": (
        "CREATE TABLE a.t (id int);"
        " CREATE FUNCTION b.f() RETURNS bigint LANGUAGE sql"
        " BEGIN ATOMIC SELECT count(*) FROM a.t; END;",
        {("function b.f()", "table a.t", "catalog")},
    ),
    "sql string body names a table, unqualified through its search_path": (
        "CREATE TABLE a.t (id int);"
        " CREATE FUNCTION b.f() RETURNS bigint LANGUAGE sql SET search_path = a"
        " AS 'SELECT count(*) FROM t';",
        {("function b.f()", "table a.t", "body")},
    ),
    "plpgsql body: qualified call, declared type, %ROWTYPE": (
        "CREATE TYPE a.mood AS ENUM ('ok'); CREATE TABLE a.t (id int);"
        " CREATE FUNCTION a.g() RETURNS int LANGUAGE sql AS 'SELECT 1';"
        " CREATE FUNCTION b.f() RETURNS int LANGUAGE plpgsql AS $$"
        " DECLARE m a.mood; r a.t%ROWTYPE; -- FROM a.not_this\n"
        " BEGIN RETURN a.g(); END $$;",
        {
            ("function b.f()", "type a.mood", "body"),
            ("function b.f()", "table a.t", "body"),
            ("function b.f()", "function a.g()", "body"),
        },
    ),
    "plpgsql body: the database's search_path resolves unqualified names": (
        "CREATE TABLE a.t (id int); ALTER DATABASE {db} SET search_path = b, a;"
        " CREATE FUNCTION b.f() RETURNS void LANGUAGE plpgsql AS $$"
        " BEGIN UPDATE t SET id = 1; DELETE FROM only_in_a_comment_not_a_table; END $$;",
        {("function b.f()", "table a.t", "body")},
    ),
    "function signature uses a table's row type": (
        "CREATE TABLE a.t (id int);"
        " CREATE FUNCTION b.f(r a.t) RETURNS int LANGUAGE sql AS 'SELECT 1';",
        {("function b.f(a.t)", "table a.t", "catalog")},
    ),
    "trigger calls a function": (
        "CREATE FUNCTION a.touch() RETURNS trigger LANGUAGE plpgsql"
        " AS 'BEGIN RETURN NEW; END';"
        " CREATE TABLE b.t (id int);"
        " CREATE TRIGGER tg BEFORE INSERT ON b.t FOR EACH ROW EXECUTE FUNCTION a.touch();",
        {("trigger b.t.tg", "function a.touch()", "catalog")},
    ),
    "default calls a function and a sequence": (
        "CREATE SEQUENCE a.s; CREATE FUNCTION a.f() RETURNS int LANGUAGE sql AS 'SELECT 7';"
        " CREATE TABLE b.t (id bigint DEFAULT nextval('a.s'), n int DEFAULT a.f());",
        {
            ("default b.t.id", "sequence a.s", "catalog"),
            ("default b.t.n", "function a.f()", "catalog"),
        },
    ),
    "check constraint calls a function": (
        "CREATE FUNCTION a.ok(int) RETURNS boolean LANGUAGE sql AS 'SELECT $1 > 0';"
        " CREATE TABLE b.t (n int CONSTRAINT positive CHECK (a.ok(n)));",
        {("check constraint b.t.positive", "function a.ok(integer)", "catalog")},
    ),
    "column types: enum, domain over a function check, composite, array of enum": (
        "CREATE TYPE a.e AS ENUM ('x'); CREATE TYPE a.pair AS (x int, y int);"
        " CREATE FUNCTION a.ok(int) RETURNS boolean LANGUAGE sql AS 'SELECT $1 > 0';"
        " CREATE DOMAIN a.pos AS int CHECK (a.ok(VALUE));"
        " CREATE TABLE b.t (e a.e, es a.e[], p a.pair, n a.pos);",
        {
            ("table b.t", "type a.e", "catalog"),
            ("table b.t", "type a.pair", "catalog"),
            ("table b.t", "domain a.pos", "catalog"),
        },
    ),
    "collation and text search configuration": (
        "CREATE COLLATION a.c (provider = libc, locale = 'C');"
        " CREATE TEXT SEARCH CONFIGURATION a.cfg (COPY = pg_catalog.simple);"
        " CREATE TABLE b.t (name text COLLATE a.c, body text);"
        " CREATE INDEX t_fts ON b.t USING gin (to_tsvector('a.cfg', body));",
        {
            ("table b.t", "collation a.c", "catalog"),
            ("index b.t.t_fts", "text search configuration a.cfg", "catalog"),
        },
    ),
    "extension type and function": (
        "CREATE EXTENSION citext SCHEMA a;"
        " CREATE TABLE b.t (email a.citext DEFAULT a.citext('x'));",
        {
            ("table b.t", "extension citext", "catalog"),
            ("default b.t.email", "extension citext", "catalog"),
        },
    ),
    "same-schema and owned objects are not cross dependencies": (
        "CREATE TABLE b.t (id serial PRIMARY KEY, n int CHECK (n > 0));"
        " CREATE INDEX ON b.t (n); CREATE VIEW b.v AS SELECT * FROM b.t;",
        set(),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_dependencies_of_each_small_schema(
    source_pg: PostgresServer, make_db: Callable[..., str], case: str
) -> None:
    ddl, expected = CASES[case]
    db = make_db(source_pg)
    with source_pg.connect(db) as conn:
        conn.execute((SCHEMAS + ddl.replace("{db}", f'"{db}"')).encode())
    with source_pg.connect(db) as conn:
        graph = read_graph(conn)
    found = {
        (e.dependent.display, e.referenced.display, e.how)
        for e in graph.edges
        if e.dependent.schema != e.referenced.schema
    }
    assert found == expected


def test_graph_marks_unchecked_untrusted_icu_and_owned(
    source_pg: PostgresServer, make_db: Callable[..., str]
) -> None:
    db = make_db(source_pg)
    with source_pg.connect(db) as conn:
        conn.execute(
            b"SET check_function_bodies = off; CREATE SCHEMA a; CREATE TABLE a.t (id serial);"
            b" CREATE FUNCTION a.reads() RETURNS bigint LANGUAGE sql"
            b" AS 'SELECT count(*) FROM a.t';"
            b" CREATE FUNCTION a.pure() RETURNS int LANGUAGE sql AS 'SELECT length(''x'')';"
            b" CREATE TYPE a.ty AS ENUM ('x');"
            b" CREATE FUNCTION a.decl() RETURNS int LANGUAGE plpgsql"
            b" AS 'DECLARE v ty; BEGIN RETURN 1; END';"
            b" CREATE FUNCTION a.plain() RETURNS int LANGUAGE plpgsql"
            b" AS 'DECLARE v integer := 1; BEGIN RETURN v + length(NEW.x); END';"
            b" CREATE FUNCTION a.inc(int) RETURNS int LANGUAGE internal AS 'int4inc';"
            b" CREATE COLLATION a.icu (provider = icu, locale = 'und');"
            b" CREATE COLLATION a.libc (provider = libc, locale = 'C');"
        )
        graph = read_graph(conn)
    # Bodies naming anything but built-ins are created with check_function_bodies = off.
    assert {o.qualname for o in graph.unchecked} == {"a.reads()", "a.decl()"}
    assert {o.qualname for o in graph.untrusted} == {"a.inc(integer)"}
    assert {o.qualname for o in graph.icu} == {"a.icu"}
    assert {(s.qualname, t.qualname) for s, t in graph.owned_by.items()} == {("a.t_id_seq", "a.t")}


BODIES = [
    ("SELECT 1 FROM s.t JOIN u ON true", [("s", "t", "relation"), ("", "u", "relation")]),
    ("PERFORM s.f(1); x := g(2)", [("s", "f", "function"), ("", "g", "function")]),
    ("SELECT NULL::s.ty; -- FROM hidden\n /* JOIN also_hidden */", [("s", "ty", "type")]),
    ('INSERT INTO "My Schema"."Tab" VALUES (1)', [("My Schema", "Tab", "relation")]),
    ("DECLARE v s.ty; w CONSTANT int = 1; BEGIN END", [("s", "ty", "type"), ("", "int", "type")]),
    ("DECLARE c t.col%TYPE; r t%ROWTYPE; BEGIN END", [("", "t", "relation"), ("", "t", "type")]),
    ("EXECUTE 'SELECT * FROM ' || tname", []),
]


@pytest.mark.parametrize(("src", "expected"), BODIES)
def test_body_names(src: str, expected: list[tuple[str, str, str]]) -> None:
    assert [(b.schema, b.name, b.role) for b in body_names(src)] == expected
