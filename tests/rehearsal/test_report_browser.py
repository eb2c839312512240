"""The report, rendered by a real headless Chromium: every part a reader looks for is there, and
the checklist's status marks are drawn (no font on the machine has ✓/✗ glyphs: typed marks
render as empty boxes, all alike)."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from rehearsal.checklist import Status, assess, read_checklist
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


_EVIDENCE = {
    "split.verify": (True, "dbsplit verify: 2 tables equal"),
    "deploy.backup": (False, "no backup at the copy's write position (none)"),
}
"""One item proven, one failed; the rest are for people or not exercised."""


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
    r.evidence = dict(_EVIDENCE)
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
    assert '<span class="badge bad">FAILED</span>' in dom, "a failed checklist item fails the run"
    statuses = re.findall(r'<td class="mark" data-status="([a-z ]+)"><svg', dom)
    assert len(statuses) == 148, "every checklist row carries its drawn mark"
    assert set(statuses) == {s.value for s in Status}
    counts = dict(re.findall(r'<strong data-status="([a-z ]+)">(\d+)</strong>', dom))
    assert {k: int(v) for k, v in counts.items()} == {
        s.value: statuses.count(s.value) for s in Status
    }, "the counts are the page's own rows"


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


def _pixels(png: bytes, columns: int) -> tuple[int, int, list[bytes]]:
    """Width, height and the rows' first ``columns`` RGB pixels of an 8-bit, non-interlaced PNG
    (Chromium's). PNG's filters only look left and up, so the first columns decode alone."""
    width, height, depth, colour = struct.unpack(">IIBB", png[16:26])
    assert depth == 8, depth
    assert colour in (2, 6), colour
    channels = 4 if colour == 6 else 3
    chunks, at = b"", 8
    while at < len(png):
        (size,) = struct.unpack(">I", png[at : at + 4])
        if png[at + 4 : at + 8] == b"IDAT":
            chunks += png[at + 8 : at + 8 + size]
        at += 12 + size
    raw, stride, rows = zlib.decompress(chunks), width * channels, []
    keep = min(columns, width) * channels
    previous = bytearray(keep)
    for y in range(height):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : y * (stride + 1) + 1 + keep]),
        )
        for x in range(keep):
            left = line[x - channels] if x >= channels else 0
            up, corner = previous[x], previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                near = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[x] = (line[x] + near) & 0xFF
        rows.append(bytes(line[i] for i in range(keep) if i % channels < 3))
        previous = line
    return width, height, rows


ROW = 20
"""Height of one checklist row on the marks-only page."""
SEEN = 64
"""Pixels of each row looked at: the 16 px mark and what is beside it."""
MARKS_ONLY = (
    "<style>body{margin:0} body>*{display:none} #checklist{display:block} #checklist>*"
    "{display:none} #checklist table,#checklist tbody{display:block;margin:0;border:0}"
    " #checklist tr{display:block;height:20px} #checklist tr:first-child,#checklist th,"
    "#checklist td{display:none} #checklist td.mark{display:block;width:16px;height:16px;"
    "padding:0;margin:0;border:0} svg.mark{display:block}</style></body>"
)
"""CSS appended to the report that leaves only the checklist's mark cells, one per 20 px row
at the top left, so each item's mark has a known box in the screenshot."""


def test_every_mark_is_drawn_and_the_four_differ(report: Path, tmp_path: Path) -> None:
    page = report.with_name("marks.html")
    page.write_text(report.read_text().replace("</body>", MARKS_ONLY), encoding="utf-8")
    shot = tmp_path / "marks.png"
    height = ROW * 150
    _chromium(
        tmp_path,
        f"--window-size=400,{height}",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        page.as_uri(),
    )
    width, tall, rows = _pixels(shot.read_bytes(), columns=SEEN)
    assert (width, tall) == (400, height)
    background = rows[-1][:3]
    statuses = [a.status for a in assess(read_checklist(CHECKLIST), _EVIDENCE)]
    first: dict[Status, bytes] = {}
    for i, status in enumerate(statuses):
        box = b"".join(rows[ROW * i + y][: 16 * 3] for y in range(16))
        inked = sum(box[k : k + 3] != background for k in range(0, len(box), 3))
        assert inked > 0.6 * 16 * 16, f"item {i + 1}'s {status.value} mark is not drawn"
        beside = {
            rows[ROW * i + y][k : k + 3] for y in range(ROW) for k in range(16 * 3, SEEN * 3, 3)
        }
        assert beside == {background}, f"item {i + 1}: nothing but the mark in its row"
        seen = first.setdefault(status, box)
        assert _distance(box, seen) < 4, f"item {i + 1}'s {status.value} mark is drawn differently"
    assert set(first) == set(Status), "the fixture shows every status"
    drawn = list(first.values())
    closest = min(_distance(a, b) for n, a in enumerate(drawn) for b in drawn[n + 1 :])
    assert closest > 30, "the four marks differ from each other"


def _distance(a: bytes, b: bytes) -> float:
    """Mean absolute difference of two boxes' channels (0-255); tiles rasterise an identical
    drawing a fraction apart, different marks tens apart."""
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)
