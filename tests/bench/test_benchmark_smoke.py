"""The split benchmark's methods at a tiny scale, through the same code (no timing assertions).

Proves that every method (pg_dump | psql, the hand-tuned COPY pipes, dbsplit migrate + verify)
runs against the stand-ins and produces targets equal to the source, and that the results
table and JSON are written.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.split_benchmark import (
    HAND_TUNED,
    METHODS,
    MIGRATE,
    PG_DUMP_PSQL,
    VERIFY,
    RssSampler,
    Servers,
    libpq_env,
    run,
    write_results,
)
from standins.dbaas import Dbaas
from standins.postgres import PostgresServer


def test_every_method_copies_a_tiny_source_correctly(
    source_pg: PostgresServer, data_pg: PostgresServer, dbaas: Dbaas, tmp_path: Path
) -> None:
    lines: list[str] = []
    result = run(Servers(source_pg, data_pg, dbaas), 3, methods=METHODS, pipes=2, say=lines.append)
    by_method = {r.method: r for r in result.results}
    assert list(by_method) == [PG_DUMP_PSQL, HAND_TUNED, MIGRATE, VERIFY]
    assert result.failures == {}
    for method in (PG_DUMP_PSQL, HAND_TUNED, MIGRATE):
        assert by_method[method].verified is True, method
        assert by_method[method].seconds > 0
        assert by_method[method].peak_rss_bytes > 1024 * 1024, method
    assert by_method[VERIFY].verified is True
    assert set(by_method[HAND_TUNED].phases) == {"pre-data", "data", "post-data"}
    assert result.source_bytes > 3 * 1024 * 1024

    markdown = tmp_path / "RESULTS.md"
    write_results(result, tmp_path / "results", markdown)
    doc = json.loads((tmp_path / "results" / "split-3mb.json").read_text())
    assert doc["ratios"]["migrate_vs_pg_dump_psql"] is not None
    assert doc["ratios"]["verify_vs_migrate"] is not None
    table = markdown.read_text()
    assert "| dbsplit migrate --no-verify |" in table
    assert "| pg_dump \\| psql |" in table
    assert "DIFFER" not in table
    assert any("targets equal the source" in line for line in lines)


def test_libpq_env_keeps_the_password_out_of_argv(dbaas: Dbaas) -> None:
    env = libpq_env(dbaas.direct_url("x"))
    assert env["PGPASSWORD"] == dbaas.admin_password
    assert env["PGUSER"] == "doadmin"
    assert env["PGSSLMODE"] == "verify-full"
    assert env["PGDATABASE"] == "x"
    assert Path(env["PGSSLROOTCERT"]).exists()


def test_rss_sampler_sums_a_process_tree() -> None:
    import subprocess
    import sys

    code = (
        "import subprocess, sys, time; b = bytearray(40 * 2**20);"
        "c = subprocess.Popen([sys.executable, '-c', 'b = bytearray(40 * 2**20); "
        "import time; time.sleep(1.5)']); time.sleep(1.5); c.wait()"
    )
    with RssSampler(interval=0.02) as sampler:
        proc = subprocess.Popen([sys.executable, "-c", code])
        sampler.add(proc.pid)
        proc.wait()
    assert sampler.peak > 80 * 2**20
