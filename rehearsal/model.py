"""What a rehearsal records: timed steps, named windows, table checks, requests, evidence."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Step:
    """One step of the window, timed in seconds from the rehearsal's start."""

    name: str
    phase: str
    start: float
    end: float
    ok: bool = True
    detail: str = ""

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Window:
    """A span worth calling out on the timeline (write freeze, whole window, rollback)."""

    name: str
    start: float
    end: float
    budget_seconds: float | None = None

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class TableCheck:
    """One table of one target: source rows, target rows, checksum result."""

    target: str
    table: str
    source_rows: int
    target_rows: int | None
    matches: bool


@dataclass(frozen=True)
class Request:
    """One request of the load generator."""

    at: float
    ok: bool
    status: int
    latency_ms: float
    path: str


Facts = Mapping[str, Any]
"""What a run measured, by name (``rehearsal.proofs.FACTS``)."""


@dataclass(frozen=True)
class Proof:
    """Evidence for checklist items: whether the measured facts hold, and what they were."""

    passed: bool
    text: str


Prover = Callable[[Facts], Proof | None]
"""Facts to a proof, or None when the facts it needs were not recorded in the run."""


@dataclass(frozen=True)
class SmokeRun:
    """One phase's smoke checks: how many passed, and how long they took (ms)."""

    phase: str
    mode: str
    passed: int
    total: int
    median_ms: float
    slowest_ms: float
    slowest: str
    failed: tuple[str, ...] = ()


def summarize_smoke(recorded: Any) -> list[SmokeRun]:
    """The journal's ``smoke`` record (phase -> {"mode", "checks"}) as one summary per phase."""
    runs: list[SmokeRun] = []
    for phase, record in sorted((recorded or {}).items()):
        checks = [c for c in (record or {}).get("checks") or [] if isinstance(c, dict)]
        if not checks:
            continue
        times = sorted(float(c.get("ms") or 0) for c in checks)
        slowest = max(checks, key=lambda c: float(c.get("ms") or 0))
        runs.append(
            SmokeRun(
                phase=str(phase),
                mode=str(record.get("mode")),
                passed=sum(c.get("ok") is True for c in checks),
                total=len(checks),
                median_ms=times[len(times) // 2],
                slowest_ms=float(slowest.get("ms") or 0),
                slowest=str(slowest.get("name")),
                failed=tuple(str(c.get("name")) for c in checks if c.get("ok") is not True),
            )
        )
    return runs


@dataclass
class Rehearsal:
    """Everything a report is made from."""

    started_at: str
    scale_mb: int
    t0: float = field(default_factory=time.monotonic)
    steps: list[Step] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    tables: list[TableCheck] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    #: Checklist evidence, ``key -> (passed, text)``: ``rehearsal.proofs.evaluate`` of the facts
    #: the run measured.
    evidence: dict[str, tuple[bool, str]] = field(default_factory=dict)
    #: How many checklist items this run proved, failed, left to people, did not exercise.
    counts: dict[str, int] = field(default_factory=dict)
    numbers: dict[str, float] = field(default_factory=dict)
    #: Seconds ``deploy/rollback.py`` took from each point the window was killed at.
    drills: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: The smoke checks each phase ran, as the VPS's journal recorded them (``summarize_smoke``).
    smoke: list[SmokeRun] = field(default_factory=list)

    def now(self) -> float:
        """Seconds since the rehearsal started."""
        return time.monotonic() - self.t0

    @contextmanager
    def step(self, name: str, phase: str) -> Iterator[Step]:
        """Time a step; it is recorded as failed if the body raises."""
        record = Step(name=name, phase=phase, start=self.now(), end=self.now())
        self.steps.append(record)
        try:
            yield record
        except BaseException as exc:
            record.ok = False
            if not record.detail:
                lines = str(exc).strip().splitlines()
                record.detail = lines[0] if lines else type(exc).__name__
            raise
        finally:
            record.end = self.now()

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps) and all(t.matches for t in self.tables)

    def success_rate(self) -> float | None:
        """The share of requests that succeeded, or None without requests."""
        if not self.requests:
            return None
        return sum(r.ok for r in self.requests) / len(self.requests)

    def to_json(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "scale_mb": self.scale_mb,
            "ok": self.ok,
            "numbers": self.numbers,
            "smoke": [asdict(run) for run in self.smoke],
            "steps": [asdict(s) | {"seconds": s.seconds} for s in self.steps],
            "windows": [asdict(w) | {"seconds": w.seconds} for w in self.windows],
            "tables": [asdict(t) for t in self.tables],
            "requests": {
                "total": len(self.requests),
                "failed": sum(not r.ok for r in self.requests),
                "success_rate": self.success_rate(),
            },
            "evidence": {k: {"passed": v[0], "text": v[1]} for k, v in self.evidence.items()},
            "rollback_from_each_step": self.drills,
            "notes": self.notes,
        }
