"""The rehearsal's report: ``index.html`` and its Markdown twin, with the charts beside them.

The page holds, in this order: the numbers against their budgets, the timeline chart (write
freeze, whole window and rollback called out), the app's request success rate, a table per
target of every table's rows and checksum, and every checklist item with its evidence, under
the counts of this run's assessments. The status marks are inline SVG (no font has to have them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from pathlib import Path

from rehearsal.checklist import Assessment, Status, counts
from rehearsal.model import Rehearsal, SmokeRun
from rehearsal.svg import mark_svg, requests_svg, timeline_svg

#: Budgets for the numbers the rehearsal prints: (label, budget seconds or None). The rollback
#: from each point the window is killed at (``Rehearsal.drills``) has the rollback's budget.
DRILL_BUDGET = 30.0
BUDGETS: dict[str, tuple[str, float | None]] = {
    "write_freeze_s": ("write-freeze window (source read-only until healthy on split)", 120.0),
    "window_s": ("whole maintenance window (checklist: 2 hours)", 7200.0),
    "migration_s": ("data migration + verify (checklist: 15-30 minutes)", 1800.0),
    "rollback_s": ("rollback drill to healthy on the old database", 30.0),
    "rerun_s": ("re-running the deploy with nothing to change", 20.0),
    "restore_s": ("restore drill from the Spaces backup", None),
}

#: Each status as the legend and the counts say it.
STATUS_TEXT = {
    Status.PROVEN: "proven by this rehearsal",
    Status.FAILED: "failed",
    Status.HUMAN: "only people can tick it",
    Status.NOT_EXERCISED: "not exercised here",
}

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;max-width:1160px;color:#1b1b1b}
h1{margin-bottom:4px} .sub{color:#555;margin-top:0}
table{border-collapse:collapse;margin:8px 0 20px;font-size:13px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#2f7d32;font-weight:600} .bad{color:#c62828;font-weight:600}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff}
.badge.ok{background:#2f7d32} .badge.bad{background:#c62828}
svg.mark{vertical-align:-3px} td.mark{text-align:center}
"""


def write_report(rehearsal: Rehearsal, checklist: Sequence[Assessment], directory: Path) -> Path:
    """Write the report into ``directory`` and return the path of ``index.html``."""
    directory.mkdir(parents=True, exist_ok=True)
    span = max([s.end for s in rehearsal.steps] + [1.0])
    timeline = timeline_svg(rehearsal.steps, rehearsal.windows)
    requests = requests_svg(rehearsal.requests, span)
    (directory / "timeline.svg").write_text(timeline, encoding="utf-8")
    (directory / "requests.svg").write_text(requests, encoding="utf-8")
    data = rehearsal.to_json() | {
        "checklist": [
            {
                "n": a.item.number,
                "section": a.item.section,
                "item": a.item.text,
                "status": a.status.value,
                "evidence": a.evidence,
            }
            for a in checklist
        ]
    }
    data["checklist_counts"] = {s.value: n for s, n in counts(checklist).items()}
    (directory / "result.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    (directory / "report.md").write_text(_markdown(rehearsal, checklist), encoding="utf-8")
    index = directory / "index.html"
    index.write_text(_html(rehearsal, checklist, timeline, requests), encoding="utf-8")
    return index


def _passed(rehearsal: Rehearsal, checklist: Sequence[Assessment]) -> bool:
    """Every step passed, every table matched, no checklist item failed."""
    return rehearsal.ok and not any(a.status is Status.FAILED for a in checklist)


def _number_rows(rehearsal: Rehearsal) -> list[tuple[str, str, str, bool | None]]:
    rows: list[tuple[str, str, str, bool | None]] = []
    for key, (label, budget) in BUDGETS.items():
        if key not in rehearsal.numbers:
            continue
        value = rehearsal.numbers[key]
        within = None if budget is None else value <= budget
        rows.append((label, f"{value:.1f} s", "—" if budget is None else f"{budget:.0f} s", within))
    for label, seconds in rehearsal.drills.items():
        rows.append(
            (
                f"rollback with the window killed {label}",
                f"{seconds:.1f} s",
                f"{DRILL_BUDGET:.0f} s",
                seconds <= DRILL_BUDGET,
            )
        )
    for run in rehearsal.smoke:
        rows.append(
            (
                smoke_line(run),
                f"{run.median_ms:.0f} ms median, {run.slowest_ms:.0f} ms slowest",
                "all pass",
                run.passed == run.total,
            )
        )
    return rows


def smoke_line(run: SmokeRun) -> str:
    """``smoke checks at cutover (split): 19 of 19 passed`` (and which failed)."""
    text = f"smoke checks at {run.phase} ({run.mode}): {run.passed} of {run.total} passed"
    return text + (f"; failed: {', '.join(run.failed)}" if run.failed else "")


def _html(
    rehearsal: Rehearsal, checklist: Sequence[Assessment], timeline: str, requests: str
) -> str:
    rate = rehearsal.success_rate()
    failed = [r for r in rehearsal.requests if not r.ok]
    ok = _passed(rehearsal, checklist)
    verdict = "passed" if ok else "FAILED"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Rehearsal {escape(rehearsal.started_at)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Maintenance-window rehearsal <span class='badge {'ok' if ok else 'bad'}'>"
        f"{verdict}</span></h1>",
        f"<p class='sub'>{escape(rehearsal.started_at)} · source scale {rehearsal.scale_mb} MB</p>",
        "<section id='numbers'><h2>Numbers</h2><table><tr><th>measure</th><th>measured</th>"
        "<th>budget</th><th></th></tr>",
    ]
    for label, value, budget, within in _number_rows(rehearsal):
        mark = (
            ""
            if within is None
            else ("<span class='ok'>within</span>" if within else "<span class='bad'>over</span>")
        )
        parts.append(
            f"<tr><td>{escape(label)}</td><td class='num'>{value}</td>"
            f"<td class='num'>{budget}</td><td>{mark}</td></tr>"
        )
    parts.append("</table></section>")
    parts.append(f"<section id='timeline'><h2>Timeline</h2>{timeline}</section>")
    rate_text = "no requests" if rate is None else f"{100 * rate:.2f}%"
    parts.append(
        f"<section id='requests'><h2>Requests to the app</h2>"
        f"<p>success rate across the window: <strong id='success-rate'>{rate_text}</strong> "
        f"({len(rehearsal.requests) - len(failed)} of {len(rehearsal.requests)} succeeded)</p>"
        f"{requests}"
    )
    if failed:
        parts.append(
            "<details><summary>failed requests</summary><table><tr><th>at</th>"
            "<th>path</th><th>status</th></tr>"
        )
        for r in failed[:200]:
            parts.append(
                f"<tr><td class='num'>{r.at:.2f} s</td><td>{escape(r.path)}</td>"
                f"<td class='num'>{r.status}</td></tr>"
            )
        parts.append("</table></details>")
    parts.append("</section><section id='tables'><h2>Tables</h2>")
    for target in sorted({t.target for t in rehearsal.tables}):
        parts.append(
            f"<h3>{escape(target)}</h3><table class='target' data-target='{escape(target)}'>"
            "<tr><th>table</th><th>source rows</th><th>target rows</th>"
            "<th>checksum</th></tr>"
        )
        for t in (t for t in rehearsal.tables if t.target == target):
            mark = (
                "<span class='ok'>match</span>" if t.matches else "<span class='bad'>DIFFERS</span>"
            )
            target_rows = "—" if t.target_rows is None else f"{t.target_rows:,}"
            parts.append(
                f"<tr><td>{escape(t.table)}</td><td class='num'>{t.source_rows:,}</td>"
                f"<td class='num'>{target_rows}</td><td>{mark}</td></tr>"
            )
        parts.append("</table>")
    legend = " · ".join(f"{mark_svg(s.value)} {STATUS_TEXT[s]}" for s in Status)
    tally = " · ".join(
        f"<strong data-status='{s.value}'>{n}</strong> {escape(STATUS_TEXT[s])}"
        for s, n in counts(checklist).items()
    )
    parts.append(
        "</section><section id='checklist'><h2>Deployment checklist</h2>"
        f"<p id='legend'>{legend}</p><p id='checklist-counts'>{len(checklist)} items: {tally}</p>"
        "<table><tr><th>#</th><th>section</th><th>item</th><th></th><th>evidence</th></tr>"
    )
    for a in checklist:
        parts.append(
            f"<tr class='item {a.status.name.lower()}'><td class='num'>{a.item.number}</td>"
            f"<td>{escape(a.item.section)}</td><td>{escape(a.item.text)}</td>"
            f"<td class='mark' data-status='{a.status.value}'>{mark_svg(a.status.value)}</td>"
            f"<td>{escape(a.evidence)}</td></tr>"
        )
    parts.append("</table></section>")
    if rehearsal.notes:
        parts.append("<section id='notes'><h2>Notes</h2><ul>")
        parts.extend(f"<li>{escape(n)}</li>" for n in rehearsal.notes)
        parts.append("</ul></section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _markdown(rehearsal: Rehearsal, checklist: Sequence[Assessment]) -> str:
    rate = rehearsal.success_rate()
    verdict = "passed" if _passed(rehearsal, checklist) else "FAILED"
    lines = [
        f"# Maintenance-window rehearsal: {verdict}",
        "",
        f"{rehearsal.started_at} · source scale {rehearsal.scale_mb} MB",
        "",
        "![timeline](timeline.svg)",
        "",
        "## Numbers",
        "",
        "| measure | measured | budget | |",
        "|---|---:|---:|---|",
    ]
    for label, value, budget, within in _number_rows(rehearsal):
        mark = "" if within is None else ("within" if within else "**over**")
        lines.append(f"| {label} | {value} | {budget} | {mark} |")
    lines += [
        "",
        "## Steps",
        "",
        "| step | phase | start | seconds | result |",
        "|---|---|---:|---:|---|",
    ]
    for s in rehearsal.steps:
        lines.append(
            f"| {s.name} | {s.phase} | {s.start:.1f} | {s.seconds:.2f} | "
            f"{'ok' if s.ok else 'FAILED: ' + s.detail} |"
        )
    rate_text = "no requests" if rate is None else f"{100 * rate:.2f}%"
    lines += [
        "",
        "## Requests",
        "",
        f"Success rate across the window: **{rate_text}** "
        f"({sum(r.ok for r in rehearsal.requests)} of {len(rehearsal.requests)}).",
        "",
        "![requests](requests.svg)",
        "",
        "## Tables",
        "",
    ]
    for target in sorted({t.target for t in rehearsal.tables}):
        lines += [
            f"### {target}",
            "",
            "| table | source rows | target rows | checksum |",
            "|---|---:|---:|---|",
        ]
        for t in (t for t in rehearsal.tables if t.target == target):
            target_rows = "—" if t.target_rows is None else f"{t.target_rows:,}"
            lines.append(
                f"| {t.table} | {t.source_rows:,} | {target_rows} | "
                f"{'match' if t.matches else '**DIFFERS**'} |"
            )
        lines.append("")
    tally = ", ".join(f"{n} {STATUS_TEXT[s]}" for s, n in counts(checklist).items())
    lines += [
        "## Deployment checklist",
        "",
        f"{len(checklist)} items: {tally}.",
        "",
        "| # | section | item | status | evidence |",
        "|---:|---|---|---|---|",
    ]
    for a in checklist:
        status = "**FAILED**" if a.status is Status.FAILED else a.status.value
        lines.append(
            f"| {a.item.number} | {a.item.section} | {a.item.text} | {status} | "
            f"{a.evidence.replace('|', '/')} |"
        )
    if rehearsal.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in rehearsal.notes]
    return "\n".join(lines) + "\n"
