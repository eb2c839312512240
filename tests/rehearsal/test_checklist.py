"""The checklist is read whole, and every item gets a status with a reason."""

from __future__ import annotations

from pathlib import Path

from rehearsal.checklist import HUMAN, RULES, Status, assess, read_checklist

CHECKLIST = Path(__file__).resolve().parents[3] / "shared" / "docs" / "deployment-checklist.md"


def test_reads_every_checkbox_outside_code_blocks() -> None:
    items = read_checklist(CHECKLIST)
    boxes = [line for line in CHECKLIST.read_text().splitlines() if "- [ ]" in line]
    assert len(items) == len(boxes) == 148
    first = items[0]
    assert first.text == "Digital Ocean DBaaS PostgreSQL 17 instance provisioned"
    assert first.section == "Pre-Deployment › Infrastructure Setup"
    pool = next(i for i in items if i.text == "Pool size set to 15")
    assert pool.depth == 1
    assert pool.parent == first.text


def test_sign_offs_and_announcements_are_human() -> None:
    result = assess(read_checklist(CHECKLIST), {})
    human = [a for a in result if a.status is Status.HUMAN]
    assert any("Email to all users" in a.item.text for a in human)
    assert any(a.item.section.endswith("Code Review") for a in human)
    assert all(
        a.item.section.split(" › ")[0]
        in {
            "Pre-Deployment",
            "Phase 1: Development Testing (Week 1)",
            "Phase 3: Staging Environment (Week 2-3)",
            "Phase 4: Production Deployment (Week 4)",
            "Communication Plan",
            "Sign-Off",
        }
        for a in human
    )


def test_evidence_ticks_items_and_failures_show() -> None:
    items = read_checklist(CHECKLIST)
    result = assess(items, {"split.verify": (True, "13 tables equal"), "deploy.env": (False, "no")})
    by_text = {a.item.text: a for a in result}
    assert by_text["All row counts match"].status is Status.PROVEN
    assert by_text["All row counts match"].evidence == "13 tables equal"
    assert by_text["`SPLIT_DB_MODE=true`"].status is Status.FAILED
    assert by_text["Backup everything"].status is Status.NOT_EXERCISED


def test_every_rule_matches_some_item() -> None:
    items = read_checklist(CHECKLIST)
    for rule in (*RULES, *HUMAN):
        assert any(rule.matches(i) for i in items), f"rule {rule.pattern!r} matches no item"
