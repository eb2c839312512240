"""Time ``dbsplit plan`` and ``migrate`` on the MusicBrainz schema, and list its dependencies.

Starts the stand-ins the tests use (source PostgreSQL 15; PRIMARY = the DBaaS stand-in's direct
TLS URL as the non-superuser ``doadmin``; DATA = PostgreSQL 17 owned by a non-superuser), loads
the MusicBrainz schema of PyPI ``mbdata`` with ``--rows`` generated rows per table
(:mod:`tests.dbsplit.musicbrainz`, the tests' own loader and ``split.toml``), then runs, as
subprocesses with the URLs in the environment:

- ``dbsplit plan --json --drop-cross-db-fks --config split.toml`` without ``[resolve] drop``
  (the blockers) and with it (timed, ``--rounds`` times, median kept: the 5 s budget), and, in
  turn with it, ``pg_dump --schema-only`` of the same source (the reference its ratio is to, as
  the machine's load moves both alike);
- ``dbsplit migrate --drop-cross-db-fks --no-verify`` and ``dbsplit verify`` (timed once).

It prints a Markdown report: the times against their budget, and every cross-target
dependency with what became of it.

Usage::

    python -m bench.musicbrainz_split [--rows 1500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from dbsplit import pgtools
from dbsplit.freeze import freeze
from dbsplit.urls import parse
from standins.dbaas import Dbaas
from standins.postgres import PostgresServer
from tests.dbsplit import musicbrainz as mb
from tests.dbsplit.helpers import DATA_OWNER, DATA_OWNER_PASSWORD, SplitEnv

PLAN_BUDGET_S = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=mb.ROWS, help="generated rows per table")
    parser.add_argument("--rounds", type=int, default=5, help="plan runs (median kept)")
    args = parser.parse_args()
    source = PostgresServer.start(version=15, name="mb-source")
    dbaas = Dbaas.start()
    data_pg = PostgresServer.start(version=17, name="mb-data")
    try:
        print(_run(source, dbaas, data_pg, args.rows, args.rounds))
    finally:
        for server in (data_pg, dbaas, source):
            server.stop()


def _run(
    source: PostgresServer, dbaas: Dbaas, data_pg: PostgresServer, rows: int, rounds: int
) -> str:
    source.create_role(mb.OWNER, mb.OWNER_PASSWORD)
    data_pg.create_role(DATA_OWNER, DATA_OWNER_PASSWORD)
    src = source.fresh_database(owner=mb.OWNER, prefix="mb")
    t0 = time.monotonic()
    with source.connect(src) as conn:
        mb.load(conn, rows)
        stats = conn.execute(
            b"SELECT (SELECT count(*) FROM pg_tables WHERE schemaname <> ALL"
            b"   ('{pg_catalog,information_schema}')),"
            b" (SELECT sum(n_live_tup) FROM pg_stat_user_tables),"
            b" pg_size_pretty(pg_database_size(current_database()))"
        ).fetchone()
    load_s = time.monotonic() - t0
    assert stats is not None
    freeze(parse(source.url(src)))  # migrate copies only a frozen source
    env = SplitEnv(
        source_pg=source,
        dbaas=dbaas,
        data_pg=data_pg,
        source=src,
        primary=dbaas.server.fresh_database(owner=dbaas.admin_user),
        data=data_pg.fresh_database(owner=DATA_OWNER),
    )
    with tempfile.TemporaryDirectory() as tmp:
        bare, fixed = Path(tmp, "bare.toml"), Path(tmp, "split.toml")
        bare.write_text(mb.split_toml([]))
        fixed.write_text(mb.split_toml(mb.DROPS))
        plan_args = ("plan", "--json", "--drop-cross-db-fks", "--config")
        blocked = json.loads(env.run(*plan_args, str(bare)).stdout)
        data_pg.execute("CREATE EXTENSION earthdistance CASCADE", env.data)
        times, dumps, doc = [], [], {}
        for _ in range(rounds):
            t0 = time.monotonic()
            proc = env.run(*plan_args, str(fixed))
            times.append(time.monotonic() - t0)
            doc = json.loads(proc.stdout)
            dumps.append(_pg_dump_seconds(source, src))
        t0 = time.monotonic()
        migrated = env.run("migrate", "--drop-cross-db-fks", "--no-verify", "--config", str(fixed))
        migrate_s = time.monotonic() - t0
        t0 = time.monotonic()
        verified = env.run("verify", "--config", str(fixed))
        verify_s = time.monotonic() - t0
    plan_s, dump_s = statistics.median(times), statistics.median(dumps)
    lines = [
        f"MusicBrainz (mbdata {mb.mbdata_version()}): {stats[0]} tables, {stats[1]} rows,"
        f" {stats[2]}; loaded in {load_s:.1f} s ({rows} rows per table at most)",
        "",
        "| measure | seconds | budget | ratio |",
        "|---|---:|---:|---:|",
        f"| `dbsplit plan` (median of {rounds}) | {plan_s:.2f} | {PLAN_BUDGET_S:.0f}"
        f" | {plan_s / PLAN_BUDGET_S:.2f} |",
        f"| `pg_dump --schema-only` of the source (median of {rounds}) | {dump_s:.2f} | -"
        f" | plan / pg_dump = {plan_s / dump_s:.2f} |",
        f"| `dbsplit migrate --no-verify` (exit {migrated.returncode}) | {migrate_s:.1f} | - | - |",
        f"| `dbsplit verify` (exit {verified.returncode}) | {verify_s:.1f} | - | - |",
        "",
        f"Without `[resolve] drop`: {len(blocked['blockers'])} blockers:",
        *[f"- {b}" for b in blocked["blockers"]],
        "",
        "Created with check_function_bodies off (bodies naming more than built-ins): "
        + ", ".join(
            f"{len(r['check_function_bodies_off'])} on {t.upper()}"
            for t, r in ((t, v["resolution"]) for t, v in doc["targets"].items())
        ),
        "",
        "With it: every cross-target dependency",
        *_dependencies(doc),
    ]
    return "\n".join(lines)


def _pg_dump_seconds(source: PostgresServer, dbname: str) -> float:
    dsn, env = pgtools.child_args(parse(source.url(dbname)))
    t0 = time.monotonic()
    pgtools.run(
        [str(source.bin("pg_dump")), f"--dbname={dsn}", "--schema-only"], env, what="the bench"
    )
    return time.monotonic() - t0


def _dependencies(doc: dict[str, Any]) -> list[str]:
    out = ["", "| status | kind | dependent | uses | found by | on |", "|---|---|---|---|---|---|"]
    for d in doc["dependencies"]:
        out.append(
            f"| {d['status']} | {d['kind']} | `{d['dependent']['name']}` ({d['target'].upper()})"
            f" | `{d['referenced']['name']}` ({d['referenced_on'].upper()}) | {d['found_by']}"
            f" | {d['action']} |"
        )
    return out


if __name__ == "__main__":
    main()
