"""The app's features as the checklist asks for them, proven by the window's smoke checks.

The window runs HTTP smoke checks and records them in its journal (``~/.handled-deploy/
window.json`` on the VPS) in this shape::

    state["smoke"][phase] = {"at": iso time, "mode": "single" | "split",
                             "checks": [{"name": str, "ok": bool, "status": int, "ms": float,
                                         "database": "primary" | "data", "detail": str}]}

with ``phase`` one of ``cutover``, ``rollback``, ``check``. :data:`SMOKE` says which checks
prove which checklist evidence key, at which phase and in which mode; an item is proven only when
each of its checks is there, ``ok``, in a record of that mode. Without a record of the phase its
items are "not exercised" (the rule's reason: no smoke check recorded).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rehearsal.model import Facts, Proof, Prover

SINGLE, SPLIT = ("rollback", "single"), ("cutover", "split")
"""Where each mode's smoke checks are recorded: the rollback on the old database, the cut-over."""

UPLOAD = "upload CSV (through the web)"

#: One feature each: key -> ((phase, mode), the names of the checks that prove it). The names
#: are the smoke checks' own (``name`` in the journal), as the environment's list declares them.
FEATURES: dict[str, tuple[tuple[str, str], tuple[str, ...]]] = {
    "smoke.login": (SPLIT, ("log in", "session")),
    "smoke.users": (SPLIT, ("create user", "edit user", "read back the user")),
    "smoke.roles": (SPLIT, ("create role", "manage roles", "assign role")),
    "smoke.upload": (SPLIT, (UPLOAD,)),
    "smoke.transform": (SPLIT, ("transform",)),
    "smoke.export": (SPLIT, ("export",)),
    "smoke.history": (SPLIT, ("integration history",)),
    "smoke.session_cache": (SPLIT, ("session cache",)),
    "smoke.single_login": (SINGLE, ("log in", "session")),
    "smoke.single_upload": (SINGLE, (UPLOAD,)),
    "smoke.single_transform": (SINGLE, ("transform",)),
}
ALL_CHECKS: tuple[str, ...] = tuple(
    dict.fromkeys(name for _, names in FEATURES.values() for name in names)
)
"""Every check a feature needs: "all features work" means all of these, in one mode."""

#: Checklist evidence from smoke checks: key -> ((phase, mode), the check names that prove it).
SMOKE: dict[str, tuple[tuple[str, str], tuple[str, ...]]] = {
    **FEATURES,
    "smoke.split": (SPLIT, ALL_CHECKS),
    "smoke.single": (SINGLE, ALL_CHECKS),
}


def _record(facts: Facts, phase: str) -> dict[str, Any] | None:
    record = (facts.get("smoke") or {}).get(phase)
    return record if isinstance(record, dict) else None


def smoke_proof(facts: Facts, where: tuple[str, str], names: Sequence[str]) -> Proof | None:
    """Whether each of ``names`` passed at ``where`` (phase, mode); None without a record."""
    phase, mode = where
    record = _record(facts, phase)
    if record is None:
        return None
    checks = {str(c.get("name")): c for c in record.get("checks") or [] if isinstance(c, dict)}
    parts: list[str] = []
    passed = record.get("mode") == mode
    for name in names:
        check = checks.get(name)
        if check is None:
            parts.append(f"{name}: not run")
            passed = False
            continue
        ok = check.get("ok") is True
        passed = passed and ok
        parts.append(
            f"{name}: {'ok' if ok else 'FAILED'}, HTTP {check.get('status')} in "
            f"{_ms(check.get('ms'))} ms on {check.get('database')}"
            + ("" if ok else f" ({check.get('detail')})")
        )
    head = f"smoke checks at the {phase} ({record.get('mode')} mode, {record.get('at')})"
    return Proof(passed, f"{head}: " + "; ".join(parts))


def prover(where: tuple[str, str], names: Sequence[str]) -> Prover:
    def prove(facts: Facts) -> Proof | None:
        return smoke_proof(facts, where, names)

    return prove


def identical(facts: Facts) -> Proof | None:
    """Every check passed on the old database (single mode) and again on the split."""
    single, split = smoke_proof(facts, SINGLE, ALL_CHECKS), smoke_proof(facts, SPLIT, ALL_CHECKS)
    if single is None or split is None:
        return None
    return Proof(single.passed and split.passed, f"{single.text}; then {split.text}")


def _ms(value: Any) -> str:
    try:
        return f"{float(value):.0f}"
    except (TypeError, ValueError):
        return "?"
