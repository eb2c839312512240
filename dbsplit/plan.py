"""The split plan: pure over the catalogs, printable as a table and as JSON.

:func:`build_plan` decides, without touching any database, where each table goes, which foreign
keys would cross the two databases, which other objects depend across them and what becomes of
each (:mod:`dbsplit.resolve`), what each target already holds, and what blocks the copy.
``migrate`` only executes a plan without blockers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dbsplit.catalog import Catalog, ForeignKey, Qualified, Table
from dbsplit.config import SplitConfig, Target
from dbsplit.definitions import DefinitionDiff, definition_differences
from dbsplit.deps import Abilities, ObjectGraph
from dbsplit.errors import ConfigError
from dbsplit.resolve import BLOCKED, Finding, Resolution, TargetResolution, resolve

#: How a target is prepared: objects created by dbsplit, or tables made by the app's migrations.
MODE_CREATE = "create"
MODE_DATA_ONLY = "data-only"


@dataclass(frozen=True)
class TargetState:
    """What a target holds, as read by :func:`dbsplit.state.inspect_target`."""

    catalog: Catalog
    #: Qualified names of tables holding at least one row.
    tables_with_rows: frozenset[str] = frozenset()
    #: Qualified names of tables dbsplit has written rows to (from its bookkeeping).
    tables_recorded: frozenset[str] = frozenset()
    #: True once dbsplit created the schema objects (its "pre-data" step is recorded).
    created_by_dbsplit: bool = False
    #: True once a previous run finished.
    finished: bool = False
    #: What the target's user can create (None: not read, assumed sufficient).
    abilities: Abilities | None = None


@dataclass(frozen=True)
class TablePlan(Qualified):
    """One source table and where it goes."""

    schema: str
    name: str
    target: Target | None
    kind: str
    est_rows: int
    size_bytes: int
    #: Why the table is not copied ("excluded", "schema excluded"), else "".
    skipped: str = ""


@dataclass(frozen=True)
class ColumnIssue:
    """A column that makes a pre-existing target table incompatible with the source."""

    table: str
    column: str
    problem: str

    def __str__(self) -> str:
        return f"{self.table}.{self.column}: {self.problem}"


@dataclass(frozen=True)
class TargetPlan:
    """Readiness of one target."""

    target: Target
    schemas: tuple[str, ...]
    mode: str
    existing_schemas: tuple[str, ...]
    #: ``(qualname, empty)`` for each routed table that already exists on the target.
    existing_tables: tuple[tuple[str, bool], ...]
    missing_tables: tuple[str, ...]
    column_issues: tuple[ColumnIssue, ...]
    extensions: tuple[str, ...]
    created_by_dbsplit: bool = False
    finished: bool = False
    #: In ``data-only`` mode: how the app-created tables' collations, nullability, defaults
    #: and constraints differ from the source's (verify would fail on each after the copy).
    definition_diffs: tuple[DefinitionDiff, ...] = ()


def _empty_catalog() -> Catalog:
    return Catalog(tables=(), sequences=(), foreign_keys=(), schemas=(), extensions=())


@dataclass(frozen=True)
class SplitPlan:
    """The whole plan. Frozen: ``migrate`` executes it as given."""

    tables: tuple[TablePlan, ...]
    cross_fks: tuple[ForeignKey, ...]
    targets: tuple[TargetPlan, ...]
    blockers: tuple[str, ...]
    drop_cross_db_fks: bool = False
    source: Catalog = field(repr=False, compare=False, default_factory=_empty_catalog)
    #: Every dependency between objects routed to different targets, and its fate.
    dependencies: tuple[Finding, ...] = ()
    resolutions: Mapping[Target, TargetResolution] = field(default_factory=dict)

    def resolution(self, target: Target) -> TargetResolution:
        """What dbsplit creates on ``target`` beyond its schemas, and what it leaves out."""
        return self.resolutions.get(target, TargetResolution())

    @property
    def ok(self) -> bool:
        """True when nothing blocks the copy."""
        return not self.blockers

    def target(self, target: Target) -> TargetPlan:
        for tp in self.targets:
            if tp.target is target:
                return tp
        raise KeyError(target)

    def tables_for(self, target: Target) -> tuple[Table, ...]:
        """The source tables (leaves, plain and partitioned parents) copied to ``target``."""
        wanted = {t.qualname for t in self.tables if t.target is target and not t.skipped}
        return tuple(t for t in self.source.tables if t.qualname in wanted)

    def fks_for(self, target: Target) -> tuple[ForeignKey, ...]:
        """The foreign keys to create on ``target`` (both ends there)."""
        routed = {t.qualname for t in self.tables if t.target is target and not t.skipped}
        crossing = set(self.cross_fks)
        return tuple(
            fk for fk in self.source.foreign_keys if fk.qualtable in routed and fk not in crossing
        )

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON-ready data."""
        return {
            "ok": self.ok,
            "blockers": list(self.blockers),
            "tables": [
                {
                    "table": t.qualname,
                    "target": t.target.value if t.target else None,
                    "kind": t.kind,
                    "est_rows": t.est_rows,
                    "size_bytes": t.size_bytes,
                    "skipped": t.skipped or None,
                }
                for t in self.tables
            ],
            "cross_database_fks": [
                {"name": fk.name, "from": fk.qualtable, "to": fk.qualref, "dropped": True}
                if self.drop_cross_db_fks
                else {"name": fk.name, "from": fk.qualtable, "to": fk.qualref}
                for fk in self.cross_fks
            ],
            "targets": {
                tp.target.value: {
                    "mode": tp.mode,
                    "schemas": list(tp.schemas),
                    "existing_schemas": list(tp.existing_schemas),
                    "existing_tables": [
                        {"table": name, "empty": empty} for name, empty in tp.existing_tables
                    ],
                    "missing_tables": list(tp.missing_tables),
                    "column_issues": [str(i) for i in tp.column_issues],
                    "extensions": list(tp.extensions),
                    "created_by_dbsplit": tp.created_by_dbsplit,
                    "finished": tp.finished,
                    "resolution": self.resolution(tp.target).to_json(),
                    "definition_differences": [str(d) for d in tp.definition_diffs],
                }
                for tp in self.targets
            },
            "dependencies": [f.to_json() for f in self.dependencies],
        }

    def render(self) -> str:
        """The plan as a human-readable text table."""
        lines: list[str] = []
        rows = [
            (
                t.qualname,
                t.target.value.upper() if t.target else "-",
                t.skipped or ("partitioned" if t.kind == "p" else ""),
                str(t.est_rows),
                _size(t.size_bytes),
            )
            for t in self.tables
        ]
        lines += _table(("table", "target", "note", "est. rows", "size"), rows)
        lines.append("")
        if self.cross_fks:
            verb = "dropped" if self.drop_cross_db_fks else "BLOCKER"
            lines.append("foreign keys crossing the two databases:")
            for fk in self.cross_fks:
                lines.append(f"  {fk.name}: {fk.qualtable} -> {fk.qualref} ({verb})")
        else:
            lines.append("no foreign key crosses the two databases")
        lines += _render_dependencies(self.dependencies)
        for tp in self.targets:
            lines.append("")
            lines.append(
                f"{tp.target.value.upper()}: schemas {', '.join(tp.schemas) or '-'}; mode {tp.mode}"
                + ("; finished by a previous run" if tp.finished else "")
            )
            lines.append(f"  extensions needed: {', '.join(tp.extensions) or '-'}")
            lines.append(f"  schemas present: {', '.join(tp.existing_schemas) or '-'}")
            if tp.existing_tables:
                empty = sum(1 for _, e in tp.existing_tables if e)
                lines.append(
                    f"  tables present: {len(tp.existing_tables)} ({empty} empty), "
                    f"missing: {len(tp.missing_tables)}"
                )
            for issue in tp.column_issues:
                lines.append(f"  incompatible: {issue}")
            res = self.resolution(tp.target)
            if res.copies:
                lines.append(f"  created here too: {', '.join(o.qualname for o in res.copies)}")
            if res.drops:
                lines.append(f"  left out: {', '.join(o.qualname for o in res.drops)}")
            for diff in tp.definition_diffs:
                lines.append(f"  differs: {diff}")
        lines.append("")
        if self.blockers:
            lines.append(f"{len(self.blockers)} blocker(s):")
            lines += [f"  - {b}" for b in self.blockers]
        else:
            lines.append("nothing blocks the copy")
        return "\n".join(lines)


def build_plan(
    source: Catalog,
    config: SplitConfig,
    targets: Mapping[Target, TargetState],
    *,
    drop_cross_db_fks: bool = False,
    graph: ObjectGraph | None = None,
) -> SplitPlan:
    """Plan the split of ``source`` onto ``targets``; ``graph`` is the source's object
    dependencies (:func:`dbsplit.deps.read_graph`; None: foreign keys only).

    Raises :class:`ConfigError` when a configuration file names a schema the source lacks
    (the built-in defaults may name schemas a source does not have), or a ``[resolve] drop``
    entry that names no object of the source.
    """
    named = config.named_schemas() if config.source_file is not None else ()
    unknown = [s for s in named if s not in source.schemas]
    if unknown:
        raise ConfigError(
            f"schema {unknown[0]!r} named in the config does not exist in the source"
            f" (it has: {', '.join(source.schemas)})"
        )
    tables = tuple(_route(t, config) for t in source.tables)
    target_of = {t.qualname: t.target for t in tables if not t.skipped}
    cross = tuple(
        fk
        for fk in source.foreign_keys
        if fk.qualtable in target_of and target_of.get(fk.qualref) is not target_of[fk.qualtable]
    )
    blockers: list[str] = []
    if cross and not drop_cross_db_fks:
        for fk in cross:
            where = target_of.get(fk.qualref)
            blockers.append(
                f"foreign key {fk.name!r} on {fk.qualtable} references {fk.qualref}, which "
                + (f"goes to {where.value.upper()}" if where else "is not copied")
                + ": use --drop-cross-db-fks to leave it out"
            )
    target_plans = [
        _target_plan(target, source, config, tables, state) for target, state in targets.items()
    ]
    res = _resolve(graph or ObjectGraph(), config, tables, target_plans, targets)
    for i, tp in enumerate(target_plans):
        more = res.target(tp.target).extensions
        if more:
            target_plans[i] = replace(tp, extensions=tuple(sorted({*tp.extensions, *more})))
        blockers += _target_blockers(target_plans[i], targets[tp.target])
    blockers += res.blockers
    return SplitPlan(
        tables=tables,
        cross_fks=cross,
        targets=tuple(target_plans),
        blockers=tuple(blockers),
        drop_cross_db_fks=drop_cross_db_fks,
        source=source,
        dependencies=res.findings,
        resolutions=res.targets,
    )


def _resolve(
    graph: ObjectGraph,
    config: SplitConfig,
    tables: tuple[TablePlan, ...],
    target_plans: list[TargetPlan],
    states: Mapping[Target, TargetState],
) -> Resolution:
    """The cross-target dependencies of the targets dbsplit creates the objects of (the
    app's migrations made the others' objects)."""
    created = [tp for tp in target_plans if tp.mode == MODE_CREATE]
    return resolve(
        graph,
        config,
        {tp.target: states[tp.target].abilities for tp in created},
        excluded_tables=frozenset(t.qualname for t in tables if t.skipped == "excluded"),
        extension_needs={tp.target: tp.extensions for tp in created},
    )


def _render_dependencies(findings: tuple[Finding, ...]) -> list[str]:
    if not findings:
        return ["no other object depends across the two databases"]
    marks = {BLOCKED: "BLOCKER"}
    lines = ["objects depending across the two databases:"]
    for f in findings:
        lines.append(f"  [{marks.get(f.status, f.status)}] ({f.kind}, by {f.how}) {f.summary}")
    return lines


def _route(table: Table, config: SplitConfig) -> TablePlan:
    target = config.target_of(table.schema)
    skipped = ""
    if target is None:
        skipped = "schema not copied"
    elif config.is_excluded_table(table.schema, table.name) or (
        table.parent is not None and config.is_excluded_table(*table.parent)
    ):
        skipped = "excluded"
    return TablePlan(
        schema=table.schema,
        name=table.name,
        target=target,
        kind=table.kind,
        est_rows=table.est_rows,
        size_bytes=table.size_bytes,
        skipped=skipped,
    )


def _target_plan(
    target: Target,
    source: Catalog,
    config: SplitConfig,
    tables: tuple[TablePlan, ...],
    state: TargetState,
) -> TargetPlan:
    schemas = tuple(s for s in source.schemas if config.target_of(s) is target)
    routed = [t for t in tables if t.target is target and not t.skipped]
    existing: list[tuple[str, bool]] = []
    missing: list[str] = []
    issues: list[ColumnIssue] = []
    diffs: list[DefinitionDiff] = []
    for tp in routed:
        tgt = state.catalog.table(tp.schema, tp.name)
        if tgt is None:
            missing.append(tp.qualname)
            continue
        existing.append((tp.qualname, tp.qualname not in state.tables_with_rows))
        src = source.table(tp.schema, tp.name)
        assert src is not None
        found = column_issues(src, tgt)
        issues += found
        named = {issue.column for issue in found}
        diffs += [d for d in definition_differences(src, tgt) if d.column not in named]
    extensions = sorted({e for s in schemas for e in source.extension_needs.get(s, ())})
    mode = MODE_CREATE if state.created_by_dbsplit or not existing else MODE_DATA_ONLY
    return TargetPlan(
        target=target,
        schemas=schemas,
        mode=mode,
        existing_schemas=tuple(s for s in schemas if s in state.catalog.schemas),
        existing_tables=tuple(existing),
        missing_tables=tuple(missing),
        column_issues=tuple(issues),
        extensions=tuple(extensions),
        created_by_dbsplit=state.created_by_dbsplit,
        finished=state.finished,
        # dbsplit's own tables are created from the source's DDL; a resumed run may lack
        # constraints it has not built yet, which is no difference to report.
        definition_diffs=tuple(diffs) if mode == MODE_DATA_ONLY else (),
    )


def _target_blockers(tp: TargetPlan, state: TargetState) -> list[str]:
    name = tp.target.value.upper()
    blockers: list[str] = []
    if tp.existing_tables and tp.missing_tables:
        blockers.append(
            f"{name} has {len(tp.existing_tables)} of the "
            f"{len(tp.existing_tables) + len(tp.missing_tables)} tables routed to it "
            f"(missing: {', '.join(tp.missing_tables[:5])}"
            + (", ..." if len(tp.missing_tables) > 5 else "")
            + "): create all of them (the app's migrations) or none"
        )
    blockers += [f"{name} table {issue}" for issue in tp.column_issues]
    blockers += [f"{name} table {diff}" for diff in tp.definition_diffs]
    for qualname, empty in tp.existing_tables:
        if not empty and qualname not in state.tables_recorded:
            blockers.append(
                f"{name} table {qualname} holds rows dbsplit did not write: empty it first"
            )
    return blockers


def column_issues(source: Table, target: Table) -> list[ColumnIssue]:
    """How ``target`` (made by the app's migrations) differs from ``source`` in a way that
    would make the copy fail or change the data."""
    issues: list[ColumnIssue] = []
    name = source.qualname
    if source.kind != target.kind:
        issues.append(
            ColumnIssue(
                name, "*", f"is {_KINDS[target.kind]} on the target, {_KINDS[source.kind]} here"
            )
        )
    for col in source.columns:
        tcol = target.column(col.name)
        if tcol is None:
            if not col.generated:
                issues.append(ColumnIssue(name, col.name, "missing on the target"))
            continue
        if tcol.type != col.type:
            issues.append(
                ColumnIssue(name, col.name, f"type {tcol.type} on the target, {col.type} here")
            )
        if tcol.generated != col.generated:
            where = "the target" if tcol.generated else "the source"
            issues.append(ColumnIssue(name, col.name, f"generated only on {where}"))
    for tcol in target.columns:
        if source.column(tcol.name) is None and tcol.not_null and not tcol.has_default:
            if tcol.generated or tcol.identity:
                continue
            issues.append(
                ColumnIssue(name, tcol.name, "extra NOT NULL column without default on the target")
            )
    return issues


_KINDS = {"r": "a table", "p": "a partitioned table"}


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    right = {3, 4}

    def fmt(row: tuple[str, ...]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return [fmt(header), fmt(tuple("-" * w for w in widths)), *(fmt(r) for r in rows)]
