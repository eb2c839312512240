"""The report, rendered by a real headless Chromium: every part a reader looks for is there."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from rehearsal.checklist import assess, read_checklist
from rehearsal.model import Rehearsal, Request, Step, TableCheck, Window
from rehearsal.report import write_report

CHECKLIST = Path(__file__).resolve().parents[3] / "shared" / "docs" / "deployment-checklist.md"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    assert binary, "Debian's chromium is missing: `make test` installs it"
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )


@pytest.fixture
def report(tmp_path: Path) -> Path:
    r = Rehearsal(started_at="2026-11-24T02:00:00Z", scale_mb=64)
    names = [
        "single-DB health",
        "preflight",
        "backup",
        "freeze source",
        "dbsplit migrate",
        "write .env",
        "build",
        "pm2 restart",
        "health gate",
        "rollback drill",
    ]
    t = 0.0
    for name in names:
        r.steps.append(Step(name=name, phase="window", start=t, end=t + 3.0))
        t += 3.0
    r.steps[-1].ok = True
    r.windows = [
        Window("maintenance window", 3.0, 27.0, 7200.0),
        Window("write freeze", 9.0, 27.0, 120.0),
        Window("rollback", 27.0, 30.0, 30.0),
    ]
    r.requests = [
        Request(
            at=i * 0.1,
            ok=not 100 <= i < 150,
            status=200 if not 100 <= i < 150 else 0,
            latency_ms=2.0,
            path="/api/health",
        )
        for i in range(300)
    ]
    r.tables = [
        TableCheck("primary", "config.users", 120, 120, True),
        TableCheck("data", "reference.carriers", 40, 40, True),
    ]
    r.numbers = {"write_freeze_s": 18.0, "rollback_s": 3.0, "rerun_s": 4.0, "window_s": 24.0}
    r.evidence = {
        "split.verify": (True, "dbsplit verify: 2 tables equal"),
        "deploy.backup": (False, "no backup at the copy's write position (none)"),
    }
    return write_report(r, assess(read_checklist(CHECKLIST), r.evidence), tmp_path / "report")


def test_browser_renders_every_part(report: Path, tmp_path: Path) -> None:
    dom = _chromium(tmp_path, "--dump-dom", report.as_uri()).stdout
    for part in ("numbers", "timeline", "requests", "tables", "checklist"):
        assert f'id="{part}"' in dom, f"section {part} missing from the rendered page"
    timeline = dom.split('id="timeline"', 1)[1].split("</section>", 1)[0]
    assert timeline.count("<rect") >= 10 + 3, "one bar per step plus the shaded windows"
    assert "write freeze: 18.0 s" in timeline
    assert "rollback: 3.0 s" in timeline
    assert "maintenance window: 24.0 s" in timeline
    assert re.search(r'id="success-rate">83\.33%<', dom)
    assert 'data-target="primary"' in dom
    assert 'data-target="data"' in dom
    assert "config.users" in dom
    assert "reference.carriers" in dom
    assert "dbsplit verify: 2 tables equal" in dom
    assert "Email to all users" in dom  # listed as something only people can tick


def test_timeline_fits_one_screen(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "page.png"
    _chromium(tmp_path, "--window-size=1280,900", f"--screenshot={shot}", report.as_uri())
    png = shot.read_bytes()
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1280, 900)
    svg = (report.parent / "timeline.svg").read_text()
    size = re.search(r"width='(\d+)' height='(\d+)'", svg)
    assert size is not None
    assert int(size[1]) <= 1280, "the timeline must fit the width of the screen"
    assert int(size[2]) <= 700, "the timeline must be readable without scrolling"
    assert (report.parent / "report.md").read_text().startswith("# Maintenance-window rehearsal")
