"""The checklist is read whole, and every item gets a status with a reason."""

from __future__ import annotations

from pathlib import Path

from rehearsal.checklist import GAPS, HUMAN, RULES, Status, assess, read_checklist

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
    result = assess(
        items, {"split.verify": (True, "13 tables equal"), "env.split_mode": (False, "no")}
    )
    by_text = {a.item.text: a for a in result}
    assert by_text["All row counts match"].status is Status.PROVEN
    assert by_text["All row counts match"].evidence == "13 tables equal"
    assert by_text["`SPLIT_DB_MODE=true`"].status is Status.FAILED
    assert by_text["Backup everything"].status is Status.NOT_EXERCISED
    assert by_text["Backup everything"].evidence == "no evidence recorded for deploy.backup"


def test_an_item_a_rule_names_is_never_left_to_people() -> None:
    """Without its evidence, a rule's item is "not exercised" (with the rule's reason), even in
    a section people sign off: "Session caching working" sits in the week on staging."""
    by_text = {a.item.text: a for a in assess(read_checklist(CHECKLIST), {})}
    cache = by_text["Session caching working (check logs)"]
    assert cache.status is Status.NOT_EXERCISED
    assert cache.evidence == "no smoke check recorded"
    assert by_text["No connection errors"].status is Status.HUMAN


def test_every_rule_matches_some_item() -> None:
    items = read_checklist(CHECKLIST)
    for rule in (*RULES, *HUMAN):
        assert any(rule.matches(i) for i in items), f"rule {rule.pattern!r} matches no item"
    for gap in GAPS:
        assert any(gap.matches(i) for i in items), f"gap {gap.pattern!r} matches no item"


def test_no_rule_is_shadowed_by_an_earlier_one() -> None:
    """Each item takes the first rule that matches: a rule whose every item an earlier rule
    takes would never tick anything."""
    items = read_checklist(CHECKLIST)
    for rule in RULES:
        taken = [i for i in items if next((r for r in RULES if r.matches(i)), None) is rule]
        assert taken, f"rule {rule.pattern!r} ({rule.key}) ticks nothing: an earlier rule wins"
