"""The orchestrator: ``plan`` and ``migrate`` as a list of steps, pgcopydb style.

::

    STEP 1  check that the source is frozen (nothing can write to it), read the catalogs and
            the objects' dependencies (source under an exported snapshot, with its write
            position) and plan; refuse on blockers (nothing written), and refuse a target
            whose copy started from another position of the source
    STEP 2  prepare each target: bookkeeping, extensions, pre-data DDL of its schemas plus the
            objects it needs from the other target's, less those [resolve] drop leaves out
            (:mod:`dbsplit.tailor`) (or, for tables the app's migrations made, drop their
            foreign keys, recording them); autovacuum paused on the tables to load
    STEP 3  copy the rows: worker processes, one snapshot, one transaction per table part
    STEP 4  post-data DDL: primary keys, unique constraints, indexes (parallel), triggers...
    STEP 5  foreign keys: NOT VALID, then VALIDATE
    STEP 6  sequences: the source's last_value and is_called
    STEP 7  refresh materialized views, resume autovacuum, and record the target as done

Every step records itself in the target it changed, in the same transaction, and is skipped
when a rerun finds it recorded. At the end the source is checked again: still frozen, and at
the same write position as at the snapshot.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg

from dbsplit import autovacuum, copy, finish, pgtools, schema, state, tailor, watchdog
from dbsplit import freeze as freezing
from dbsplit.catalog import Catalog, Relation, Sequence, read_catalog
from dbsplit.config import SplitConfig, Target
from dbsplit.connect import connect, first_line
from dbsplit.deps import ObjectGraph, read_graph
from dbsplit.errors import BlockedError, SplitError, StateError
from dbsplit.plan import MODE_CREATE, SplitPlan, TargetState, build_plan
from dbsplit.progress import LogProgress, Progress
from dbsplit.report import MigrateReport
from dbsplit.urls import PgUrl

#: Tables smaller than this are never split into ranges.
MIN_SPLIT_BYTES = 16 * 1024 * 1024


def default_jobs() -> int:
    """Worker processes by default: the machine's cores, at least 2 and at most 4 (each worker
    is a Python process with libpq loaded, about 40 MB: 4 keep the total under 200 MB)."""
    return min(4, max(2, os.cpu_count() or 2))


@dataclass(frozen=True)
class Options:
    """How ``migrate`` runs."""

    jobs: int = 0
    drop_cross_db_fks: bool = False
    pg_dump: str | None = None
    #: Split tables larger than this into ctid ranges (None: decided from the data size).
    split_bytes: int | None = None
    #: Copy from a source that is not frozen (tests, benchmarks): exact only if nothing writes.
    allow_writable_source: bool = False


@dataclass
class _Session:
    source_url: PgUrl
    urls: dict[Target, PgUrl]
    src: psycopg.Connection[Any]
    snapshot: str
    catalog: Catalog
    targets: dict[Target, psycopg.Connection[Any]]
    states: dict[Target, TargetState]
    plan: SplitPlan
    #: The source's write position at the snapshot.
    position: freezing.WritePosition
    #: What the freeze check found (None when it was not required).
    frozen: freezing.FreezeCheck | None = None
    graph: ObjectGraph = field(default_factory=ObjectGraph)
    #: The targets' catalogs once prepared (STEP 2).
    target_catalogs: dict[Target, Catalog] = field(default_factory=dict)


@contextmanager
def session(
    *,
    source: PgUrl,
    primary: PgUrl,
    data: PgUrl,
    config: SplitConfig,
    drop_cross_db_fks: bool = False,
    require_frozen: bool = False,
) -> Iterator[_Session]:
    """Connect, export a snapshot of the source, read every catalog and build the plan.

    Reads only. The snapshot stays valid while the context is open. With ``require_frozen``,
    a source that is not frozen (:func:`dbsplit.freeze.check`) raises :class:`StateError`.
    """
    urls = {Target.PRIMARY: primary, Target.DATA: data}
    with ExitStack() as stack:
        src = stack.enter_context(connect(source, what="source", short_statements=True))
        frozen = None
        try:
            src.commit()
            if require_frozen:
                frozen = freezing.require_frozen(src)
                src.commit()
            src.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            src.read_only = True
            row = src.execute("SELECT pg_export_snapshot()").fetchone()
            assert row is not None
            snapshot = str(row[0])
            position = freezing.write_position(src)
            catalog = read_catalog(src)
            graph = read_graph(src)
        except psycopg.Error as exc:
            raise SplitError(f"cannot read the source catalog: {first_line(exc)}") from None
        conns = {
            # Not short: a rerun's look for rows may scan a table full of an aborted part's
            # dead rows, and these sessions also validate and refresh.
            t: stack.enter_context(connect(u, what=t.value.upper(), autocommit=True))
            for t, u in urls.items()
        }
        states = {}
        for t, conn in conns.items():
            routed = [
                (tb.schema, tb.name)
                for tb in catalog.tables
                if config.target_of(tb.schema) is t
                and not config.is_excluded_table(tb.schema, tb.name)
            ]
            try:
                states[t] = state.inspect_target(conn, routed)
            except psycopg.Error as exc:
                raise SplitError(
                    f"cannot read the catalog of {t.value.upper()}: {first_line(exc)}"
                ) from None
        plan = build_plan(catalog, config, states, drop_cross_db_fks=drop_cross_db_fks, graph=graph)
        yield _Session(
            source, urls, src, snapshot, catalog, conns, states, plan, position, frozen, graph
        )


def make_plan(
    *, source: PgUrl, primary: PgUrl, data: PgUrl, config: SplitConfig, drop_cross_db_fks: bool
) -> SplitPlan:
    """Read the three databases and return the plan (writes nothing)."""
    with session(
        source=source,
        primary=primary,
        data=data,
        config=config,
        drop_cross_db_fks=drop_cross_db_fks,
    ) as s:
        return s.plan


def migrate(
    *,
    source: PgUrl,
    primary: PgUrl,
    data: PgUrl,
    config: SplitConfig,
    options: Options | None = None,
    progress: Progress | None = None,
) -> MigrateReport:
    """Copy the source into PRIMARY and DATA; resumable, idempotent.

    Raises :class:`BlockedError` (nothing written) when the plan has blockers.
    """
    opts = options or Options()
    out: Progress = progress or LogProgress()
    report = MigrateReport()
    t0 = time.monotonic()
    out.step("STEP 1/7: check the source is frozen, read the catalogs and plan")
    strict = not opts.allow_writable_source
    with (
        watchdog.doing("migrate"),
        session(
            source=source,
            primary=primary,
            data=data,
            config=config,
            drop_cross_db_fks=opts.drop_cross_db_fks,
            require_frozen=strict,
        ) as s,
    ):
        plan = s.plan
        if not plan.ok:
            more = f" (and {len(plan.blockers) - 1} more: see dbsplit plan)"
            raise BlockedError(
                f"nothing was written: {plan.blockers[0]}"
                + (more if len(plan.blockers) > 1 else "")
            )
        if strict:
            _same_source_as_first_run(s)
        else:
            out.info("source not required to be frozen: the copy is exact only if nothing writes")
        report.source_position = s.position.to_json()
        report.skipped_fks = [
            {"name": fk.name, "from": fk.qualtable, "to": fk.qualref} for fk in plan.cross_fks
        ]
        _report_resolutions(plan, report)
        todo = [t for t in s.targets if not s.states[t].finished]
        if not todo:
            out.info("both targets are already complete: nothing to do")
            report.already_done = True
        else:
            _run(s, todo, opts, out, report)
        for t, conn in s.targets.items():
            for rel, parts in state.done_parts(conn).items():
                for _, (rows, nbytes, secs) in sorted(parts.items()):
                    report.add_part(rel, t.value, rows, nbytes, secs)
        if strict:
            _source_unchanged(s)
    report.seconds = time.monotonic() - t0
    return report


def _same_source_as_first_run(s: _Session) -> None:
    """Refuse to continue (or call done) a copy that started from another source position."""
    for t, conn in s.targets.items():
        mark = state.source_mark(conn)
        if mark is None:
            continue
        why = s.position.moved_since(freezing.WritePosition.from_json(mark))
        if why:
            raise StateError(
                f"the source changed since {t.value.upper()}'s copy was taken ({why}): it lacks"
                " those writes; reset the targets (deploy/reset_split.py) and copy again"
            )


def _source_unchanged(s: _Session) -> None:
    """After the copy: the source is still frozen and at the snapshot's write position."""
    s.src.rollback()
    freezing.require_frozen(s.src)
    now = freezing.write_position(s.src)
    s.src.rollback()
    why = now.moved_since(s.position)
    if why:
        raise StateError(
            f"the source changed while it was being copied ({why}): the targets lack those"
            " writes; do not cut over: reset the targets and copy again"
        )


def _run(s: _Session, todo: list[Target], opts: Options, out: Progress, rep: MigrateReport) -> None:
    jobs = opts.jobs or default_jobs()
    timer = _Timer(rep)

    # The workers start (a Python process each) while the targets are prepared.
    with copy.Workers(source=s.source_url, targets=s.urls, snapshot=s.snapshot, jobs=jobs) as w:
        _copy_all(s, todo, opts, jobs, out, timer, w)
    _finish(s, todo, jobs, out, timer)


def _copy_all(
    s: _Session,
    todo: list[Target],
    opts: Options,
    jobs: int,
    out: Progress,
    timer: _Timer,
    workers: copy.Workers,
) -> None:
    """STEP 2 to STEP 4: prepare the targets, copy the rows, build the post-data."""
    plan = s.plan
    with timer("prepare"):
        out.step("STEP 2/7: prepare the targets")
        scripts = _dump_schemas(s, todo, opts)
        for t in todo:
            conn, tp = s.targets[t], plan.target(t)
            state.ensure_schema(conn)
            state.record_source_mark(conn, s.position.to_json())
            schema.create_extensions(conn, tp.extensions, s.catalog)
            if tp.mode == MODE_CREATE:
                if not s.states[t].created_by_dbsplit:
                    out.info(f"{t.value.upper()}: creating schemas {', '.join(tp.schemas)}")
                    schemas = tailor.dump_schemas(tp.schemas, plan.resolution(t))
                    schema.apply_pre_data(conn, schemas, scripts[t])
            else:
                routed = {tb.qualname for tb in plan.tables_for(t)}
                finish.drop_foreign_keys(conn, s.states[t].catalog, routed)
        s.target_catalogs.update({t: read_catalog(s.targets[t]) for t in todo})
        for t in todo:
            tcat = s.target_catalogs[t]
            leaves = [
                (tb.schema, tb.name)
                for tb in plan.tables_for(t)
                if (tt := tcat.table(tb.schema, tb.name)) is not None and tt.kind == "r"
            ]
            autovacuum.pause(s.targets[t], leaves)

    post: dict[Target, schema.PostData] = {}
    for t in todo:
        if plan.target(t).mode != MODE_CREATE or t not in scripts:
            continue  # app-made tables, or post-data already done by an earlier run
        url, name = s.urls[t], t.value.upper()

        def opener(url: PgUrl = url, name: str = name) -> psycopg.Connection[Any]:
            return connect(url, what=name, autocommit=True)

        done = state.done_steps(s.targets[t])
        post[t] = schema.PostData(opener, scripts[t], done, max(1, jobs // 2))

    try:
        with timer("copy"):
            _copy(s, todo, opts, workers, out, post)
        with timer("post-data"):
            out.step("STEP 4/7: primary keys, indexes, constraints, triggers")
            for p in post.values():
                p.finish()
    finally:
        for p in post.values():
            p.abort()


def _finish(s: _Session, todo: list[Target], jobs: int, out: Progress, timer: _Timer) -> None:
    """STEP 5 to STEP 7: foreign keys, sequences, materialized views."""
    plan = s.plan
    with timer("foreign keys"):
        out.step("STEP 5/7: foreign keys (NOT VALID, then VALIDATE)")

        def fks(t: Target) -> None:
            conn = s.targets[t]
            if "fks" in state.done_steps(conn):
                return
            if plan.target(t).mode == MODE_CREATE:
                url, name = s.urls[t], t.value.upper()
                finish.add_foreign_keys(
                    lambda: connect(url, what=name, autocommit=True),
                    plan.fks_for(t),
                    s.catalog,
                    jobs,
                )
            else:
                finish.restore_dropped_foreign_keys(conn, s.target_catalogs[t])
            with conn.transaction():
                state.record_step(conn, "fks")

        # The two targets are two servers: their keys are added at the same time.
        with ThreadPoolExecutor(len(todo)) as pool:
            for future in [pool.submit(fks, t) for t in todo]:
                future.result()
        for fk in plan.cross_fks:
            out.info(f"left out foreign key {fk.name}: {fk.qualtable} -> {fk.qualref}")

    with timer("sequences"):
        out.step("STEP 6/7: sequences")
        for t in todo:
            seqs = _sequences_for(s, t)
            try:
                values = finish.read_sequences(s.src, seqs)
                s.src.rollback()
            except psycopg.Error as exc:
                raise SplitError(f"cannot read source sequences: {first_line(exc)}") from None
            finish.set_sequences(s.targets[t], values)

    with timer("materialized views"):
        out.step("STEP 7/7: refresh materialized views")
        for t in todo:
            conn = s.targets[t]
            if "matviews" not in state.done_steps(conn):
                finish.refresh_matviews(conn, _matviews_for(s, t))
            with conn.transaction():
                autovacuum.resume(conn)
                state.record_step(conn, state.STEP_DONE)


def _copy(
    s: _Session,
    todo: list[Target],
    opts: Options,
    workers: copy.Workers,
    out: Progress,
    post: dict[Target, schema.PostData],
) -> None:
    parts = _parts(s, todo, opts, workers.jobs)
    out.step(f"STEP 3/7: copy the rows ({len(parts)} table parts, {workers.jobs} workers)")
    tables: dict[str, tuple[int, int]] = {}
    left: dict[tuple[Target, str], int] = {}
    for p in parts:
        n, b = tables.get(p.qualname, (0, 0))
        tables[p.qualname] = (n + 1, b + p.est_bytes)
        left[p.target, p.qualname] = left.get((p.target, p.qualname), 0) + 1
    for t, runner in post.items():  # tables copied by an earlier run
        for tb in s.plan.tables_for(t):
            if (t, tb.qualname) not in left:
                runner.release(tb.qualname)

    def done(r: copy.PartResult) -> None:
        out.part_done(r.qualname, r.part, r.parts, r.rows, r.bytes)
        key = (r.target, r.qualname)
        left[key] -= 1
        if left[key] == 0 and r.target in post:
            post[r.target].release(r.qualname)

    out.start_copy(tables)
    try:
        workers.run(parts, done)
    finally:
        out.end_copy()
    s.src.rollback()  # the snapshot is no longer needed


#: What each timed part of migrate is, in a message about a lost server.
_STEP_LABELS = {
    "prepare": "STEP 2/7 (preparing the targets)",
    "copy": "STEP 3/7 (the copy of the rows)",
    "post-data": "STEP 4/7 (keys and indexes)",
    "foreign keys": "STEP 5/7 (foreign keys)",
    "sequences": "STEP 6/7 (sequences)",
    "materialized views": "STEP 7/7 (materialized views)",
}


class _Timer:
    def __init__(self, report: MigrateReport) -> None:
        self.report = report

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        with watchdog.doing(_STEP_LABELS[name]):
            yield
        self.report.steps.append({"step": name, "seconds": round(time.monotonic() - t0, 3)})


def _dump_schemas(s: _Session, todo: list[Target], opts: Options) -> dict[Target, Any]:
    """pg_dump the DDL of each target that dbsplit creates (both dumps in parallel)."""
    need = [
        t
        for t in todo
        if s.plan.target(t).mode == MODE_CREATE
        and "post-data" not in state.done_steps(s.targets[t])
    ]
    if not need:
        return {}
    pg_dump = pgtools.find_tool("pg_dump", opts.pg_dump)
    major = s.catalog.server_version // 10000

    def one(t: Target) -> Any:
        if not s.plan.target(t).schemas:
            # Nothing routed here; pg_dump without --schema would dump every schema.
            return schema.SchemaScripts(preamble="", pre_data=(), post_groups=(), post_rest=())
        res = s.plan.resolution(t)
        own = s.plan.target(t).schemas
        scripts = schema.dump(
            s.source_url,
            tailor.dump_schemas(own, res),
            pg_dump=pg_dump,
            snapshot=s.snapshot,
            source_major=major,
            exclude_tables=[t.qualname for t in s.plan.tables if t.skipped == "excluded"],
        )
        return tailor.tailor(scripts, own, res)

    with ThreadPoolExecutor(len(need)) as pool:
        return dict(zip(need, pool.map(one, need), strict=True))


def _parts(s: _Session, todo: list[Target], opts: Options, jobs: int) -> list[copy.Part]:
    tables = [(t, tb) for t in todo for tb in s.plan.tables_for(t) if tb.has_data]
    total = sum(tb.relation_bytes for _, tb in tables)
    chunk = opts.split_bytes
    if chunk is None:
        # Only a table larger than one worker's share holds the others up: split just those.
        # Whole tables copy faster (one TRUNCATE + COPY FREEZE, no ctid range scans).
        chunk = max(MIN_SPLIT_BYTES, total // jobs if jobs > 1 else total + 1)
    parts: list[copy.Part] = []
    for t in todo:
        conn = s.targets[t]
        recorded = state.split_bounds(conn)
        done = state.done_parts(conn)
        tcat = s.target_catalogs[t]
        new_splits: dict[str, list[int]] = {}
        mine = [tb for tt, tb in tables if tt is t]
        for tb in mine:
            bounds = recorded.get(tb.qualname)
            if bounds is None:
                bounds = copy.split_bounds(tb, chunk)
                if len(bounds) > 1:
                    new_splits[tb.qualname] = bounds
            target_table = tcat.table(tb.schema, tb.name)
            binary = all(c.binary_safe for c in tb.copy_columns) and (
                target_table is None
                or all(
                    (tc := target_table.column(c.name)) is not None and tc.type == c.type
                    for c in tb.copy_columns
                )
            )
            app_made = s.plan.target(t).mode != MODE_CREATE
            triggers = bool(app_made and target_table is not None and target_table.triggers)
            for p in copy.make_parts(t, tb, bounds, binary=binary, disable_triggers=triggers):
                if p.part not in done.get(tb.qualname, {}):
                    parts.append(p)
        if new_splits:
            state.record_splits(conn, new_splits)
    return parts


# ----- cross-target dependencies (dbsplit.resolve) --------------------------------------------


def _report_resolutions(plan: SplitPlan, report: MigrateReport) -> None:
    """List in the report what the plan resolved: objects created on both targets, objects
    ``[resolve] drop`` left out, and every dependency that was resolved or dropped."""
    report.resolutions = {t.value: r.to_json() for t, r in plan.resolutions.items()}
    report.dependencies = [f.to_json() for f in plan.dependencies if not f.to_json()["blocker"]]


def _sequences_for(s: _Session, t: Target) -> tuple[Sequence, ...]:
    """The sequences of ``t``'s schemas, and those created there too."""
    copies = {o.qualname for o in s.plan.resolution(t).copies if o.kind == "sequence"}
    own = s.catalog.sequences_in(s.plan.target(t).schemas)
    return own + tuple(q for q in s.catalog.sequences if q.qualname in copies)


def _matviews_for(s: _Session, t: Target) -> tuple[Relation, ...]:
    """The materialized views created on ``t`` (not those ``[resolve] drop`` left out)."""
    dropped = {o.qualname for o in s.plan.resolution(t).drops}
    views = s.catalog.matviews_in(s.plan.target(t).schemas)
    return tuple(v for v in views if v.qualname not in dropped)
