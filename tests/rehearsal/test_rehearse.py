"""`make rehearse` end to end at a small scale: the run passes, the report renders, --keep works.

One rehearsal (16 MB) for the module, run through the library function with ``keep=True``: the
tests then look at its result, render its report in Debian's headless Chromium, check that the
kept stand-ins still answer, and finally tear them down (what a later run's sweep would do).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rehearsal import ledger
from rehearsal.run import Options, Result, rehearse
from standins.host import http_json
from tests.rehearsal.test_report_browser import CHROMIUM_FLAGS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Result]:
    out = tmp_path_factory.mktemp("rehearsal")
    lines: list[str] = []
    res = rehearse(Options(scale_mb=16, out=out, keep=True, rate=10.0, say=lines.append))
    print("\n".join(lines))
    try:
        yield res
    finally:
        if res.world is not None:
            res.world.stop()
            if res.world.network is not None:
                res.world.network.close()
        ledger.clear()


def test_the_rehearsal_passes_and_prints_its_numbers(result: Result) -> None:
    failed = [f"{s.name}: {s.detail}" for s in result.rehearsal.steps if not s.ok]
    assert result.passed, f"failed steps: {failed}; numbers {result.rehearsal.numbers}"
    numbers = result.rehearsal.numbers
    for key in ("write_freeze_s", "window_s", "migration_s", "rollback_s", "rerun_s", "restore_s"):
        assert key in numbers, f"{key} missing from {numbers}"
    assert 0 < numbers["write_freeze_s"] <= numbers["window_s"] < 120
    assert numbers["rollback_s"] < 30
    assert numbers["rerun_s"] < 20
    assert 50 < numbers["success_rate_pct"] < 100, "the window must show failed requests"
    names = [s.name for s in result.rehearsal.steps]
    for name in (
        "single-DB health",
        "PRIMARY initialisation",
        "production deploy",
        "post-deployment validation (check.py)",
        "rollback drill (rollback.py)",
        "reset the stale split (reset_split.py)",
        "redeploy (production.py)",
        "re-run with nothing to change",
        "restore drill from Spaces (restore.py)",
    ):
        assert name in names
    assert any(s.phase == "operation" for s in result.rehearsal.steps)
    unproven = {k: v[1] for k, v in result.rehearsal.evidence.items() if not v[0]}
    assert not unproven, f"evidence that failed: {unproven}"
    for key in ("dbaas.hba", "dbaas.pool", "load.concurrency", "split.verify", "check.pg_logs"):
        assert key in result.rehearsal.evidence
    data = json.loads((result.report.parent / "result.json").read_text())  # type: ignore[union-attr]
    assert data["ok"] is True


def test_the_report_renders_in_chromium(result: Result, tmp_path: Path) -> None:
    assert result.report is not None
    binary = shutil.which("chromium")
    assert binary, "Debian's chromium is missing: `make test` installs it"
    dom = subprocess.run(
        [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            result.report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    ).stdout
    for part in ("numbers", "timeline", "requests", "tables", "checklist"):
        assert f'id="{part}"' in dom, f"section {part} missing"
    timeline = dom.split('id="timeline"', 1)[1].split("</section>", 1)[0]
    for window in ("write freeze: ", "maintenance window: ", "rollback: "):
        assert window in timeline, f"{window} not called out on the timeline"
    assert re.search(r'id="success-rate">\d+\.\d\d%<', dom)
    tables = result.rehearsal.tables
    assert {t.target for t in tables} == {"primary", "data"}
    assert tables
    assert all(t.matches for t in tables)
    for target in ("primary", "data"):
        assert f'data-target="{target}"' in dom
    for t in tables:
        assert t.table in dom
    assert "config.users" in dom
    assert "✅" in dom, "checklist items ticked"
    assert "dbsplit verify:" in dom, "with their evidence"
    assert "Email to all users" in dom, "human items listed as such"
    assert dom.count("👤") > 2
    markdown = (result.report.parent / "report.md").read_text()
    assert markdown.startswith("# Maintenance-window rehearsal")


def test_keep_leaves_the_stand_ins_answering(result: Result) -> None:
    assert result.world is not None
    assert result.env_file is not None
    assert result.env_file.stat().st_mode & 0o777 == 0o600
    health = http_json(result.world.vps.app.health_url).body
    assert isinstance(health, dict), health
    assert health.get("status") == "ok", health
    ssh = result.world.vps.ssh.run("echo kept")
    assert ssh.stdout.strip() == "kept"
    with result.world.dbaas.server.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert ledger.LEDGER.exists()
