"""Autovacuum is off on the tables being loaded, and back to each table's own setting after."""

from __future__ import annotations

from pathlib import Path

from dbsplit import autovacuum, state
from tests.dbsplit.helpers import SplitEnv

OPTIONS = (
    "SELECT n.nspname || '.' || c.relname, c.reloptions, t.reloptions FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " LEFT JOIN pg_class t ON t.oid = c.reltoastrelid"
    " WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', '_dbsplit')"
    " AND (c.reloptions IS NOT NULL OR t.reloptions IS NOT NULL) ORDER BY 1"
)


def test_migrate_leaves_only_the_sources_own_autovacuum_settings(
    split_env: SplitEnv, tmp_path: Path
) -> None:
    proc = split_env.run("migrate", "--drop-cross-db-fks", "--no-verify")
    assert proc.returncode == 0, proc.stderr
    assert split_env.query("primary", OPTIONS) == []
    assert split_env.query("data", OPTIONS) == [
        ("workspace.jobs", ["autovacuum_enabled=false"], None)
    ]
    for where in ("primary", "data"):
        assert split_env.query(where, "SELECT count(*) FROM _dbsplit.autovacuum_paused") == [(0,)]


def test_pause_is_recorded_idempotent_and_undone_by_resume(split_env: SplitEnv) -> None:
    with split_env.connect("data") as conn:
        state.ensure_schema(conn)
        conn.execute("CREATE TABLE public.narrow (id int)")
        conn.execute("CREATE TABLE public.wide (id int, body text)")  # has a TOAST table
        conn.execute("CREATE TABLE public.own (id int) WITH (autovacuum_enabled = on)")
        tables = [("public", "narrow"), ("public", "wide"), ("public", "own")]

        assert autovacuum.pause(conn, tables) == 2
        assert autovacuum.pause(conn, tables) == 0  # a rerun changes nothing
        assert conn.execute(OPTIONS).fetchall() == [
            ("public.narrow", ["autovacuum_enabled=off"], None),
            ("public.own", ["autovacuum_enabled=on"], None),
            ("public.wide", ["autovacuum_enabled=off"], ["autovacuum_enabled=off"]),
        ]
        recorded = "SELECT schema_name, table_name FROM _dbsplit.autovacuum_paused ORDER BY 2"
        assert conn.execute(recorded).fetchall() == [("public", "narrow"), ("public", "wide")]

        with conn.transaction():
            autovacuum.resume(conn)
        assert conn.execute(OPTIONS).fetchall() == [("public.own", ["autovacuum_enabled=on"], None)]
        assert conn.execute(recorded).fetchall() == []
