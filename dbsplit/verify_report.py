"""What :func:`dbsplit.verify.verify` returns: per-table, per-sequence and routing results.

A :class:`VerifyReport` is frozen; ``failures()`` gives one line per difference (naming the
table and key range), ``render()`` a table for people and ``to_json()`` the ``--json`` form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from dbsplit.connect import SESSION_SETTINGS
from dbsplit.errors import VerifyError

Side = Literal["source", "primary", "data"]
Status = Literal["ok", "differs", "missing", "columns differ", "error"]

SIDE_LABEL: dict[str, str] = {"source": "source", "primary": "PRIMARY", "data": "DATA"}


@dataclass(frozen=True)
class KeyRange:
    """A half-open key range ``[lo, hi)`` of ``key`` whose rows differ."""

    key: str
    lo: int
    hi: int
    source_rows: int
    target_rows: int

    def __str__(self) -> str:
        return f"{self.key} [{self.lo}, {self.hi})"

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "lo": self.lo,
            "hi": self.hi,
            "source_rows": self.source_rows,
            "target_rows": self.target_rows,
        }


@dataclass(frozen=True)
class TableCheck:
    """The comparison of one source table with its copy on its target."""

    schema: str
    name: str
    #: ``"primary"`` or ``"data"``.
    target: str
    status: Status
    source_rows: int | None = None
    target_rows: int | None = None
    #: Key ranges compared in parallel (1: the whole table at once).
    chunks: int = 1
    #: The integer primary key the table was split on, if any.
    key: str | None = None
    #: The narrowest differing ranges found (empty for a table compared whole).
    ranges: tuple[KeyRange, ...] = ()
    #: More differing ranges than the ones listed in ``ranges``.
    more_ranges: int = 0
    detail: str = ""
    #: Query time spent on this table, summed over both servers and every range.
    seconds: float = 0.0

    @property
    def qualname(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def failure(self) -> str | None:
        """One line naming the table (and key ranges) when it differs, else None."""
        where = f"{SIDE_LABEL[self.target]} {self.qualname}"
        if self.status == "ok":
            return None
        if self.status == "missing":
            return f"{where} is missing"
        if self.status in ("columns differ", "error"):
            return f"{where}: {self.detail}"
        counts = f"source {self.source_rows} rows, target {self.target_rows} rows"
        if not self.ranges:
            return f"{where} differs ({counts})"
        shown = ", ".join(f"{r} ({r.source_rows} vs {r.target_rows} rows)" for r in self.ranges)
        more = f" and {self.more_ranges} more" if self.more_ranges else ""
        plural = "s" if len(self.ranges) + self.more_ranges > 1 else ""
        return f"{where} differs in key range{plural} {shown}{more} ({counts})"

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "name": self.name,
            "target": self.target,
            "status": self.status,
            "source_rows": self.source_rows,
            "target_rows": self.target_rows,
            "chunks": self.chunks,
            "key": self.key,
            "ranges": [r.to_json() for r in self.ranges],
            "more_ranges": self.more_ranges,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class SequenceCheck:
    """A sequence's ``(last_value, is_called)`` on the source and on its target."""

    schema: str
    name: str
    target: str
    source: tuple[int, bool] | None
    actual: tuple[int, bool] | None
    detail: str = ""

    @property
    def qualname(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ok(self) -> bool:
        return not self.detail and self.source is not None and self.source == self.actual

    def failure(self) -> str | None:
        if self.ok:
            return None
        where = f"{SIDE_LABEL[self.target]} sequence {self.qualname}"
        if self.detail:
            return f"{where}: {self.detail}"
        if self.actual is None:
            return f"{where} is missing"
        return f"{where} is {_seq_text(self.actual)}, the source has {_seq_text(self.source)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "name": self.name,
            "target": self.target,
            "ok": self.ok,
            "source": _seq_json(self.source),
            "target_value": _seq_json(self.actual),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class VerifyReport:
    """Everything verify compared, and every difference it found."""

    tables: tuple[TableCheck, ...]
    sequences: tuple[SequenceCheck, ...]
    #: Routing and constraint problems, one line each.
    problems: tuple[str, ...]
    hash_name: str
    jobs: int
    seconds: float
    settings: dict[str, str] = field(default_factory=lambda: dict(SESSION_SETTINGS))

    @property
    def ok(self) -> bool:
        """True when both targets equal the source."""
        return not self.failures()

    def failures(self) -> list[str]:
        """One line per difference, naming the table (and key range) or object."""
        lines = [f for t in self.tables if (f := t.failure()) is not None]
        lines += [f for s in self.sequences if (f := s.failure()) is not None]
        lines += list(self.problems)
        return lines

    def raise_for_failures(self) -> None:
        """Raise :class:`VerifyError` (exit 1) naming the first difference, if any."""
        failures = self.failures()
        if failures:
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            raise VerifyError(f"verify failed: {failures[0]}{more}")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: ``ok``, ``failures``, then per-table and per-sequence details."""
        return {
            "ok": self.ok,
            "failures": self.failures(),
            "seconds": round(self.seconds, 3),
            "hash": self.hash_name,
            "jobs": self.jobs,
            "settings": dict(self.settings),
            "tables": [t.to_json() for t in self.tables],
            "sequences": [s.to_json() for s in self.sequences],
            "problems": list(self.problems),
        }

    def render(self) -> str:
        """A human-readable table of every compared table, then the differences."""
        header = ("target", "table", "source rows", "target rows", "ranges", "seconds", "status")
        rows = [
            (
                SIDE_LABEL[t.target],
                t.qualname,
                _num(t.source_rows),
                _num(t.target_rows),
                str(t.chunks),
                f"{t.seconds:.2f}",
                t.status,
            )
            for t in self.tables
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        right = {2, 3, 4, 5}

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()

        out = [line(header), line(tuple("-" * w for w in widths))]
        out += [line(r) for r in rows]
        seq_bad = sum(1 for s in self.sequences if not s.ok)
        out.append("")
        out.append(
            f"{len(self.tables)} tables, {len(self.sequences)} sequences ({seq_bad} differ), "
            f"{len(self.problems)} routing/constraint problems; hash {self.hash_name}, "
            f"{self.jobs} jobs, {self.seconds:.1f} s"
        )
        failures = self.failures()
        if failures:
            out.append(f"verify FAILED: {len(failures)} differences")
            out += [f"  - {f}" for f in failures]
        else:
            out.append("verify OK: both targets equal the source")
        return "\n".join(out)


def _num(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _seq_text(value: tuple[int, bool] | None) -> str:
    if value is None:
        return "nothing"
    return f"last_value {value[0]} ({'called' if value[1] else 'not called'})"


def _seq_json(value: tuple[int, bool] | None) -> dict[str, Any] | None:
    return None if value is None else {"last_value": value[0], "is_called": value[1]}
