"""Time ``dbsplit migrate`` and ``verify`` against the checklist's way and a hand-tuned floor.

One run, on the same stand-in servers (source PostgreSQL 15; PRIMARY = the DBaaS stand-in's
direct TLS URL as the non-superuser ``doadmin``; DATA = PostgreSQL 17), on one generated
"handled" source (:mod:`standins.handled_data`), each method into fresh, empty target databases:

``pg_dump | psql``
    The checklist: ``pg_dump -n config -n customer | psql`` into PRIMARY and
    ``pg_dump -N config -N customer | psql`` into DATA, the two in parallel
    (``--no-owner --no-acl``, ``ON_ERROR_STOP``; ``public._prisma_migrations`` left out).
``hand-tuned``
    The floor: ``pg_dump --section=pre-data | psql``, then parallel binary
    ``psql -c "COPY ... TO STDOUT (FORMAT binary)" | psql -c "COPY ... FROM STDIN (FORMAT binary)"``
    pipes (largest first; tables over 64 MB split in primary-key ranges), sequences, then the
    post-data section with ``pg_restore --jobs`` (indexes and constraints built in parallel);
    both targets at once.
``dbsplit migrate --no-verify`` and ``dbsplit verify``
    The tool, run as a subprocess with ``OLD_DATABASE_URL``, ``PRIMARY_DIRECT_URL`` and
    ``DATA_DATABASE_URL`` in its environment (never a password on a command line).

Peak RSS is the largest *sum* of the resident set sizes of a method's client process tree
(dbsplit and every worker it forks, or all the pg_dump/psql processes of a method), sampled every
50 ms from ``/proc``; the database servers' own memory is not counted. Every method's targets
are then checked with :func:`dbsplit.verify.verify` (untimed), so a fast but wrong copy shows.

Usage::

    python -m bench.split_benchmark --scale-mb 800 [--markdown bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import sql

from dbsplit.catalog import Table, read_catalog
from dbsplit.config import SplitConfig, Target
from dbsplit.freeze import freeze
from dbsplit.urls import parse
from dbsplit.verify import verify
from standins import handled_data
from standins.dbaas import Dbaas
from standins.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"

PRIMARY_SCHEMAS = ("config", "customer")
EXCLUDED_TABLE = "public._prisma_migrations"

#: Tables larger than this are copied in several primary-key ranges by the hand-tuned floor.
SPLIT_BYTES = 64 * 1024 * 1024

PG_DUMP_PSQL = "pg_dump | psql"
HAND_TUNED = "hand-tuned COPY pipes"
MIGRATE = "dbsplit migrate --no-verify"
VERIFY = "dbsplit verify"
METHODS = (PG_DUMP_PSQL, HAND_TUNED, MIGRATE)


class BenchError(RuntimeError):
    """A method failed: the message names the command and its stderr tail (no passwords)."""


# ----- servers and databases -----------------------------------------------------------------


@dataclass
class Servers:
    """The three stand-in servers a benchmark runs on."""

    source: PostgresServer
    data: PostgresServer
    dbaas: Dbaas

    @classmethod
    @contextmanager
    def started(cls) -> Iterator[Servers]:
        """Start source PG15, DATA PG17 and the DBaaS stand-in; stop them afterwards."""
        source = PostgresServer.start(version=15, name="bench-source")
        try:
            data = PostgresServer.start(version=17, name="bench-data")
            try:
                dbaas = Dbaas.start()
                try:
                    yield cls(source, data, dbaas)
                finally:
                    dbaas.stop()
            finally:
                data.stop()
        finally:
            source.stop()

    def tool(self, name: str) -> str:
        """A PostgreSQL 17 client tool (dumps a 15 source, restores into 17)."""
        return str(self.data.bin(name))


@dataclass(frozen=True)
class Targets:
    """A fresh PRIMARY and DATA database for one method."""

    primary: str
    data: str
    primary_name: str
    data_name: str


def fresh_targets(servers: Servers, label: str) -> Targets:
    """Create empty PRIMARY (owned by doadmin, reached as doadmin over TLS) and DATA databases."""
    dbaas = servers.dbaas
    primary_name = dbaas.server.fresh_database(owner=dbaas.admin_user, prefix=f"p_{label}")
    data_name = servers.data.fresh_database(prefix=f"d_{label}")
    return Targets(
        primary=dbaas.direct_url(primary_name),
        data=servers.data.url(data_name),
        primary_name=primary_name,
        data_name=data_name,
    )


def drop_targets(servers: Servers, targets: Targets) -> None:
    servers.dbaas.server.drop_database(targets.primary_name)
    servers.data.drop_database(targets.data_name)


def libpq_env(url: str) -> dict[str, str]:
    """libpq environment variables for ``url``: the password travels here, not in argv."""
    u = parse(url)
    env = {"PGHOST": u.host or "", "PGPORT": str(u.port or 5432), "PGDATABASE": u.dbname or ""}
    if u.user:
        env["PGUSER"] = u.user
    if u.password:
        env["PGPASSWORD"] = u.password
    query = u.query
    if "sslmode" in query:
        env["PGSSLMODE"] = query["sslmode"]
    if "sslrootcert" in query:
        env["PGSSLROOTCERT"] = query["sslrootcert"]
    return env


# ----- measuring -----------------------------------------------------------------------------


class RssSampler:
    """Samples the summed RSS of registered processes and all their descendants."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self._roots: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def add(self, pid: int) -> None:
        with self._lock:
            self._roots.add(pid)
        self.sample()

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        with self._lock:
            roots = set(self._roots)
        if not roots:
            return
        children: dict[int, list[int]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            ppid = _ppid(int(entry.name))
            if ppid is not None:
                children.setdefault(ppid, []).append(int(entry.name))
        seen: set[int] = set()
        stack = list(roots)
        total = 0
        while stack:
            pid = stack.pop()
            if pid in seen:
                continue
            seen.add(pid)
            total += _rss(pid)
            stack += children.get(pid, [])
        with self._lock:
            self.peak = max(self.peak, total)


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 else None


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


@dataclass
class MethodResult:
    """One method's measurement."""

    method: str
    seconds: float
    peak_rss_bytes: int
    verified: bool | None = None
    phases: dict[str, float] = field(default_factory=dict)
    note: str = ""
    #: The machine's 1-minute load average when the method ended (other work skews timings).
    load_1min: float = field(default_factory=lambda: round(os.getloadavg()[0], 2))


# ----- running commands ----------------------------------------------------------------------


def run_pipeline(
    commands: Sequence[Sequence[str]],
    envs: Sequence[dict[str, str]],
    sampler: RssSampler,
    what: str,
) -> None:
    """Run ``commands[0] | commands[1] | ...``, each with its own extra environment."""
    procs: list[subprocess.Popen[bytes]] = []
    previous: IO[bytes] | None = None
    for index, (argv, extra) in enumerate(zip(commands, envs, strict=True)):
        last = index == len(commands) - 1
        proc = subprocess.Popen(
            list(argv),
            stdin=previous if previous is not None else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if last else subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **extra},
        )
        if previous is not None:
            previous.close()  # the next process owns the read end now
        previous = proc.stdout
        procs.append(proc)
        sampler.add(proc.pid)
    errors: list[str] = []
    for argv, proc in zip(commands, procs, strict=True):
        _, err = proc.communicate()
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-5:]
            errors.append(f"{Path(argv[0]).name} exited {proc.returncode}: {' | '.join(tail)}")
    if errors:
        raise BenchError(f"{what} failed: " + "; ".join(errors))


def psql(servers: Servers, *args: str) -> list[str]:
    return [servers.tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", *args]


def pg_dump(servers: Servers, *args: str) -> list[str]:
    return [servers.tool("pg_dump"), "--no-owner", "--no-acl", *args]


#: Debian's PostgreSQL 15.20 stamps every column with an internal ``pg_attver`` option that its
#: ``pg_dump`` writes and PostgreSQL 17 refuses; an operator running the checklist's way would
#: have to drop those lines, so the baselines do (dbsplit does it in ``dbsplit.schema``).
DROP_ATTVER = ["sed", "-E", r"/^ALTER TABLE .* ALTER COLUMN .* SET \(pg_attver=[0-9]+\);$/d"]


def schema_filters(target: Target) -> list[str]:
    """pg_dump switches selecting one target's schemas (the checklist's -n / -N)."""
    if target is Target.PRIMARY:
        return [arg for schema in PRIMARY_SCHEMAS for arg in ("-n", schema)]
    args = [arg for schema in PRIMARY_SCHEMAS for arg in ("-N", schema)]
    return [*args, "-T", EXCLUDED_TABLE]


def both_targets(fn: Callable[[Target], None]) -> None:
    """Run ``fn`` for PRIMARY and DATA in parallel; re-raise the first failure."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(fn, t) for t in (Target.PRIMARY, Target.DATA)]:
            future.result()


# ----- the methods ---------------------------------------------------------------------------


def method_pg_dump_psql(servers: Servers, source: str, targets: Targets) -> MethodResult:
    """``pg_dump -n ... | psql`` into PRIMARY and ``pg_dump -N ... | psql`` into DATA."""
    src_env = libpq_env(source)

    with RssSampler() as sampler:
        started = time.monotonic()

        def one(target: Target) -> None:
            url = targets.primary if target is Target.PRIMARY else targets.data
            run_pipeline(
                [pg_dump(servers, *schema_filters(target)), DROP_ATTVER, psql(servers)],
                [src_env, {}, libpq_env(url)],
                sampler,
                f"pg_dump | psql into {target.value}",
            )

        both_targets(one)
        seconds = time.monotonic() - started
    return MethodResult(PG_DUMP_PSQL, seconds, sampler.peak)


def method_hand_tuned(
    servers: Servers, source: str, targets: Targets, *, pipes: int = 4
) -> MethodResult:
    """Pre-data, parallel binary COPY pipes, sequences, post-data."""
    src_env = libpq_env(source)
    urls = {Target.PRIMARY: targets.primary, Target.DATA: targets.data}
    phases: dict[str, float] = {}
    config = SplitConfig()
    with psycopg.connect(source) as conn:
        catalog = read_catalog(conn)
        units = copy_units(conn, catalog.tables, config)
        sequences = [
            (s.schema, s.name, target)
            for s in catalog.sequences
            if (target := config.target_of(s.schema)) is not None
        ]

    with RssSampler() as sampler, tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        started = time.monotonic()

        def section(name: str) -> Callable[[Target], None]:
            def one(target: Target) -> None:
                run_pipeline(
                    [
                        pg_dump(servers, f"--section={name}", *schema_filters(target)),
                        DROP_ATTVER,
                        psql(servers),
                    ],
                    [src_env, {}, libpq_env(urls[target])],
                    sampler,
                    f"{name} into {target.value}",
                )

            return one

        both_targets(section("pre-data"))
        phases["pre-data"] = time.monotonic() - started

        def pipe(unit: CopyUnit) -> None:
            run_pipeline(
                [
                    psql(servers, "-c", f"COPY ({unit.select}) TO STDOUT (FORMAT binary)"),
                    psql(servers, "-c", f"COPY {unit.table} FROM STDIN (FORMAT binary)"),
                ],
                [src_env, libpq_env(urls[unit.target])],
                sampler,
                f"COPY {unit.table}",
            )

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=pipes) as pool:
            list(pool.map(pipe, units))
        phases["data"] = time.monotonic() - t0

        t0 = time.monotonic()
        copy_sequences(source, urls, sequences)

        def post_data(target: Target) -> None:
            # pg_restore -j builds indexes and constraints in parallel; it needs a file, and
            # a post-data-only archive is a few kilobytes of DDL.
            archive = workdir / f"post-data-{target.value}.dump"
            run_pipeline(
                [
                    pg_dump(
                        servers,
                        "-Fc",
                        "--section=post-data",
                        "-f",
                        str(archive),
                        *schema_filters(target),
                    )
                ],
                [src_env],
                sampler,
                f"post-data dump for {target.value}",
            )
            env = libpq_env(urls[target])
            run_pipeline(
                [
                    [
                        servers.tool("pg_restore"),
                        "--no-owner",
                        "--no-acl",
                        "--exit-on-error",
                        f"--jobs={max(1, pipes // 2)}",
                        "-d",
                        env["PGDATABASE"],
                        str(archive),
                    ]
                ],
                [env],
                sampler,
                f"post-data restore into {target.value}",
            )

        both_targets(post_data)
        phases["post-data"] = time.monotonic() - t0
        seconds = time.monotonic() - started
    return MethodResult(
        HAND_TUNED, seconds, sampler.peak, phases=phases, note=f"{pipes} pipes, {len(units)} units"
    )


@dataclass(frozen=True)
class CopyUnit:
    """One COPY pipe: a whole table or one primary-key range of it."""

    table: str
    select: str
    target: Target
    weight: int


def copy_units(
    conn: psycopg.Connection[Any], tables: Sequence[Table], config: SplitConfig
) -> list[CopyUnit]:
    """COPY pipes for every routed table with rows, largest first; big tables in key ranges."""
    units: list[CopyUnit] = []
    for t in tables:
        target = config.target_of(t.schema)
        if target is None or not t.has_data or config.is_excluded_table(t.schema, t.name):
            continue
        ident = sql.Identifier(t.schema, t.name).as_string(conn)
        cols = ", ".join(sql.Identifier(c.name).as_string(conn) for c in t.copy_columns)
        columns = f"{ident} ({cols})"
        base = f"SELECT {cols} FROM ONLY {ident}"
        parts = min(8, t.size_bytes // SPLIT_BYTES + 1)
        key = t.primary_key[0] if len(t.primary_key) == 1 else None
        if parts > 1 and key is not None:
            k = sql.Identifier(key).as_string(conn)
            row = conn.execute(
                sql.SQL("SELECT min({k}), max({k}) FROM ONLY {t}").format(
                    k=sql.Identifier(key), t=t.ident
                )
            ).fetchone()
            if row is not None and isinstance(row[0], int):
                lo, hi = int(row[0]), int(row[1]) + 1
                step = -(-(hi - lo) // parts)
                for a in range(lo, hi, step):
                    units.append(
                        CopyUnit(
                            columns,
                            f"{base} WHERE {k} >= {a} AND {k} < {min(hi, a + step)}",
                            target,
                            t.size_bytes // parts,
                        )
                    )
                continue
        units.append(CopyUnit(columns, base, target, t.size_bytes))
    units.sort(key=lambda u: -u.weight)
    return units


def copy_sequences(
    source: str, urls: dict[Target, str], sequences: Sequence[tuple[str, str, Target]]
) -> None:
    """``setval`` each routed sequence on its target to the source's state."""
    if not sequences:
        return
    with psycopg.connect(source) as src:
        states = []
        for schema, name, target in sequences:
            row = src.execute(
                sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(schema, name))
            ).fetchone()
            assert row is not None
            states.append((schema, name, target, row[0], row[1]))
    for target, url in urls.items():
        with psycopg.connect(url, autocommit=True) as conn:
            for schema, name, t, value, called in states:
                if t is target:
                    conn.execute(
                        "SELECT setval(%s::regclass, %s, %s)",
                        (sql.Identifier(schema, name).as_string(conn), value, called),
                    )


def dbsplit_env(source: str, targets: Targets) -> dict[str, str]:
    """The environment ``dbsplit`` reads its three URLs from."""
    path = os.environ.get("PYTHONPATH", "")
    return {
        "OLD_DATABASE_URL": source,
        "PRIMARY_DIRECT_URL": targets.primary,
        "DATA_DATABASE_URL": targets.data,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT),
    }


def run_dbsplit(
    servers: Servers, source: str, targets: Targets, args: Sequence[str], label: str
) -> MethodResult:
    """Run ``python -m dbsplit ARGS`` and measure it; a non-zero exit is a :class:`BenchError`."""
    env = {**os.environ, **dbsplit_env(source, targets)}
    with RssSampler() as sampler:
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "dbsplit", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        sampler.add(proc.pid)
        out, err = proc.communicate()
        seconds = time.monotonic() - started
    if proc.returncode != 0:
        tail = (out + err).decode(errors="replace").strip().splitlines()[-8:]
        raise BenchError(f"dbsplit {' '.join(args)} exited {proc.returncode}: " + " | ".join(tail))
    return MethodResult(label, seconds, sampler.peak)


def method_dbsplit(servers: Servers, source: str, targets: Targets) -> list[MethodResult]:
    """``dbsplit migrate --no-verify``, then ``dbsplit verify`` on the same targets."""
    migrate = run_dbsplit(
        servers,
        source,
        targets,
        ["migrate", "--no-verify", "--pg-dump", servers.tool("pg_dump")],
        MIGRATE,
    )
    checked = run_dbsplit(servers, source, targets, ["verify", "--json"], VERIFY)
    checked.verified = True  # exit 0: both targets equal the source
    return [migrate, checked]


def check_targets(source: str, targets: Targets) -> tuple[bool, list[str]]:
    """dbsplit's verify on a method's targets (untimed): does the copy equal the source?"""
    report = verify(
        source=parse(source),
        primary=parse(targets.primary),
        data=parse(targets.data),
        config=SplitConfig(),
    )
    return report.ok, report.failures()


# ----- the run -------------------------------------------------------------------------------


@dataclass
class BenchResult:
    """A whole benchmark run."""

    scale_mb: int
    source_bytes: int
    generate_seconds: float
    results: list[MethodResult]
    machine: str
    cpus: int
    failures: dict[str, list[str]] = field(default_factory=dict)

    def seconds(self, method: str) -> float | None:
        for r in self.results:
            if r.method == method:
                return r.seconds
        return None

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["ratios"] = self.ratios()
        return doc

    def ratios(self) -> dict[str, float | None]:
        dump, floor, mig, ver = (
            self.seconds(m) for m in (PG_DUMP_PSQL, HAND_TUNED, MIGRATE, VERIFY)
        )
        return {
            "migrate_vs_pg_dump_psql": _ratio(mig, dump),
            "migrate_vs_hand_tuned": _ratio(mig, floor),
            "verify_vs_migrate": _ratio(ver, mig),
        }

    def markdown(self) -> str:
        """The results table (Markdown)."""
        dump, floor, mig = (self.seconds(m) for m in (PG_DUMP_PSQL, HAND_TUNED, MIGRATE))
        lines = [
            f"Source: generated handled database, {self.source_bytes / 2**20:,.0f} MB "
            f"(`--scale-mb {self.scale_mb}`), PostgreSQL 15 -> DBaaS stand-in PG17 (TLS, doadmin) "
            f"+ PG17; {self.cpus} CPUs, {self.machine}.",
            "",
            "| method | seconds | vs pg_dump \\| psql | vs hand-tuned | vs migrate "
            "| peak RSS (MB) | targets verified | load (1 min) |",
            "|---|---:|---:|---:|---:|---:|---|---:|",
        ]
        for r in self.results:
            vs_mig = _fmt(_ratio(r.seconds, mig)) if r.method == VERIFY else ""
            ratios = (
                ("", "")
                if r.method == VERIFY
                else (
                    _fmt(_ratio(r.seconds, dump)),
                    _fmt(_ratio(r.seconds, floor)),
                )
            )
            verified = {True: "equal", False: "DIFFER", None: "-"}[r.verified]
            method = r.method.replace("|", "\\|")
            lines.append(
                f"| {method} | {r.seconds:.1f} | {ratios[0]} | {ratios[1]} | {vs_mig} "
                f"| {r.peak_rss_bytes / 2**20:.0f} | {verified} | {r.load_1min:.1f} |"
            )
        summary = self.ratios()
        lines += [
            "",
            "Targets: migrate <= 0.65x pg_dump | psql "
            f"({_fmt(summary['migrate_vs_pg_dump_psql'])}), <= 1.0x hand-tuned "
            f"({_fmt(summary['migrate_vs_hand_tuned'])}); verify <= 0.5x migrate "
            f"({_fmt(summary['verify_vs_migrate'])}); peak RSS < 200 MB.",
        ]
        for r in self.results:
            if r.phases or r.note:
                phases = ", ".join(f"{k} {v:.1f} s" for k, v in r.phases.items())
                lines.append(f"- {r.method}: {'; '.join(x for x in (phases, r.note) if x)}")
        for method, failures in self.failures.items():
            lines.append(f"- {method}: targets differ: {failures[:3]}")
        return "\n".join(lines) + "\n"


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return round(a / b, 2)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def run(
    servers: Servers,
    scale_mb: int,
    *,
    methods: Sequence[str] = METHODS,
    pipes: int = 4,
    check: bool = True,
    rounds: int = 1,
    say: Callable[[str], None] = print,
) -> BenchResult:
    """Generate the source once, then run each method into fresh targets, ``rounds`` times in
    turn; each method's median run is kept (its note lists every round)."""
    source_name = servers.source.fresh_database(prefix="handled")
    source = servers.source.url(source_name)
    t0 = time.monotonic()
    size = handled_data.generate(source, scale_mb, progress=say)
    generated = time.monotonic() - t0
    freeze(parse(source))  # as in the window: dbsplit migrate copies only a frozen source
    result = BenchResult(
        scale_mb=scale_mb,
        source_bytes=size,
        generate_seconds=round(generated, 1),
        results=[],
        machine=f"{platform.system()} {platform.machine()}",
        cpus=os.cpu_count() or 0,
    )
    samples: dict[str, list[MethodResult]] = {}
    for round_no in range(1, rounds + 1):
        for method in methods:
            label = {PG_DUMP_PSQL: "dump", HAND_TUNED: "hand", MIGRATE: "dbsplit"}[method]
            targets = fresh_targets(servers, label)
            try:
                settle(servers)
                say(f"round {round_no}/{rounds}: running {method} ...")
                if method == PG_DUMP_PSQL:
                    measured = [method_pg_dump_psql(servers, source, targets)]
                elif method == HAND_TUNED:
                    measured = [method_hand_tuned(servers, source, targets, pipes=pipes)]
                else:
                    measured = method_dbsplit(servers, source, targets)
                for m in measured:
                    rss = m.peak_rss_bytes / 2**20
                    say(f"  {m.method}: {m.seconds:.1f} s, peak RSS {rss:.0f} MB")
                if check and round_no == 1:
                    ok, failures = check_targets(source, targets)
                    measured[0].verified = ok
                    if not ok:
                        result.failures[method] = failures
                    say(f"  targets {'equal the source' if ok else 'DIFFER: ' + failures[0]}")
                for m in measured:
                    samples.setdefault(m.method, []).append(m)
            finally:
                drop_targets(servers, targets)
    result.results = [_median(runs) for runs in samples.values()]
    servers.source.drop_database(source_name)
    return result


#: Seconds to wait after flushing, so that no method starts while the kernel still writes
#: back the pages the previous one dirtied.
SETTLE_SECONDS = 1.5


def settle(servers: Servers) -> None:
    """Give every method the same start: a checkpoint on each server (no method pays for the
    previous one's dirty buffers), the kernel's dirty pages written (``sync``), then a pause."""
    for server in (servers.source, servers.data, servers.dbaas.server):
        server.execute("CHECKPOINT")
    os.sync()
    time.sleep(SETTLE_SECONDS)


def _median(runs: list[MethodResult]) -> MethodResult:
    """The run of median time, with the verification of the first round, the largest peak RSS
    of any round, and every round's time in its note."""
    ordered = sorted(runs, key=lambda r: r.seconds)
    mid = ordered[(len(ordered) - 1) // 2]
    if len(runs) == 1:
        return mid
    times = ", ".join(f"{r.seconds:.1f}" for r in runs)
    note = "; ".join(x for x in (mid.note, f"rounds {times} s, median kept") if x)
    return replace(
        mid,
        verified=runs[0].verified,
        peak_rss_bytes=max(r.peak_rss_bytes for r in runs),
        note=note,
    )


def print_table(result: BenchResult, say: Callable[[str], None] = print) -> None:
    say("")
    say(result.markdown())


def write_results(result: BenchResult, directory: Path, markdown: Path | None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"split-{result.scale_mb}mb"
    (directory / f"{stem}.json").write_text(
        json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8"
    )
    (directory / f"{stem}.md").write_text(result.markdown(), encoding="utf-8")
    if markdown is not None:
        markdown.write_text(
            "# Split benchmark results\n\n"
            "Produced by `python -m bench.split_benchmark "
            f"--scale-mb {result.scale_mb}` (see `bench/split_benchmark.py`).\n\n"
            + result.markdown(),
            encoding="utf-8",
        )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.split_benchmark --scale-mb 800``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scale-mb", type=int, default=800, help="source size (default 800)")
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated subset of: {', '.join(METHODS)}",
    )
    parser.add_argument("--pipes", type=int, default=4, help="hand-tuned parallel COPY pipes")
    parser.add_argument("--no-check", action="store_true", help="skip verifying each method")
    parser.add_argument(
        "--rounds", type=int, default=5, help="runs of each method, in turn; the median is kept"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--markdown", type=Path, help="also write the table here (RESULTS.md)")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method {unknown[0]!r}")
    with Servers.started() as servers:
        result = run(
            servers,
            args.scale_mb,
            methods=methods,
            pipes=args.pipes,
            check=not args.no_check,
            rounds=args.rounds,
        )
    print_table(result)
    write_results(result, args.results_dir, args.markdown)
    return 0 if not result.failures else 1


if __name__ == "__main__":
    sys.exit(main())
