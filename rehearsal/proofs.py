"""Checklist evidence as pure functions of the facts a rehearsal measured.

A run records *facts* (:data:`FACTS` names them: what the window's journal held, a ``.env`` read
back from the VPS, a health body, a deploy's printed lines, dbsplit's reports, a log scan...);
:func:`evaluate` turns them into evidence, ``key -> (passed, text)``, through :data:`PROOFS`.
A proof returns None when its facts were not recorded in this run (its items are then "not
exercised"), and otherwise a :class:`Proof` whose text names the measured values, passing only
when they hold. No proof passes on a constant. The app's features are proven by the window's
smoke checks (:mod:`rehearsal.smoke`).
"""

from __future__ import annotations

import re
from typing import Any

from dbsplit.errors import UsageError
from dbsplit.urls import PgUrl, parse
from rehearsal import smoke
from rehearsal.model import Facts, Proof, Prover

#: The facts a run records, and where each comes from (``rehearsal.run`` / ``rehearsal.evidence``).
FACTS: dict[str, str] = {
    "pulumi": "the Pulumi program's and policy pack's test run: returncode, summary line",
    "dbaas_version": "SELECT version() on the DBaaS stand-in",
    "hba": "the DBaaS's pg_hba.conf TCP lines and the VPS's address",
    "outside": "a connection to PRIMARY from an address other than the VPS's: its error",
    "primary_init": "deploy/primary_init.py's output",
    "pool_size": "the stack's poolSize",
    "journal": "~/.handled-deploy/window.json after the first deploy",
    "events": "~/.handled-deploy/journal.jsonl lines of that window",
    "env": "the app's .env on the VPS, read back (values, mode)",
    "ca": "the CA file on the VPS and the stack's caCertificate",
    "health_single": "/api/health before the window",
    "health_split": "/api/health after the first deploy",
    "build": "dist/build.json of the API on the VPS",
    "migrations": "per database, migrations applied (public._prisma_migrations) and shipped",
    "primary_database": "PRIMARY's database on the DBaaS: name, exists, tables per schema",
    "data_database": "the DATA database on DATA's server: name, owner",
    "migrate_report": "dbsplit migrate's JSON report of the window",
    "verify_report": "dbsplit verify's JSON report of the window",
    "check": "deploy/check.py's output",
    "pg_logs": "PRIMARY's and DATA's server logs scanned since the split went live",
    "live_requests": "the load generator's requests while the app was live on the split",
    "smoke": "the smoke checks the window recorded, by phase",
    "rollback_refused": "the refusing rollback's output",
    "journal_rollback": "~/.handled-deploy/window.json after the rollback drill",
}

PG_LOG_PATTERN = r"\b(ERROR|FATAL|PANIC):"
"""What counts as an error line in PostgreSQL's logs."""
PG_LOG_EXCLUDED = "terminating connection due to administrator command"
"""FATAL lines of sessions ended on purpose (the deploy ends sessions it owns)."""
LATENCY_BUDGET_MS = 1000.0
"""The 95th percentile of response times the rehearsal accepts while live on the split."""


# ----- the infrastructure and the DBaaS -------------------------------------------------------


def _pulumi(facts: Facts) -> Proof | None:
    run = facts.get("pulumi")
    if not run:
        return None
    summary = str(run.get("summary", ""))
    found = re.search(r"(\d+) passed", summary)
    passed = run.get("returncode") == 0 and found is not None and int(found.group(1)) > 0
    passed = passed and not re.search(r"\d+ (failed|error)", summary)
    return Proof(
        passed,
        "the Pulumi program (prod and staging stacks) under pulumi.runtime.set_mocks, checked "
        f"against the provider schema, and the policy pack: exit {run.get('returncode')}, "
        f"{summary}",
    )


def _dbaas_version(facts: Facts) -> Proof | None:
    version = facts.get("dbaas_version")
    if version is None:
        return None
    passed = str(version).startswith("PostgreSQL 17")
    return Proof(passed, f"SELECT version() on PRIMARY (the DBaaS stand-in): {version}")


def _tls(facts: Facts) -> Proof | None:
    hba, init = facts.get("hba"), facts.get("primary_init")
    if hba is None or init is None:
        return None
    lines = list(hba.get("lines") or [])
    required = bool(lines) and all(ln.startswith("hostssl") for ln in lines)
    reached = re.search(r"PRIMARY reachable from the VPS with TLS: [^\n]*", init)
    return Proof(
        required and reached is not None,
        f"{len(lines)} TCP line(s) in PRIMARY's pg_hba.conf, "
        f"{'all hostssl' if required else 'NOT all hostssl'}: " + "; ".join(lines) + "; "
        f"{reached.group(0) if reached else 'no TLS session from the VPS'}",
    )


def _hba(facts: Facts) -> Proof | None:
    hba = facts.get("hba")
    if hba is None or "outside" not in facts:
        return None
    vps = str(hba.get("vps"))
    lines = list(hba.get("lines") or [])
    only_vps = bool(lines) and all(f"{vps}/32" in ln for ln in lines)
    outside = facts.get("outside")
    refused = outside is not None and "no pg_hba.conf entry" in str(outside)
    tried = "not tried (the VPS shares this host's address)" if outside is None else str(outside)
    return Proof(
        only_vps and refused,
        f"pg_hba.conf admits {'only ' if only_vps else 'NOT only '}{vps}/32 over TCP "
        f"({len(lines)} line(s)); a connection from another address: {tried[:200]}",
    )


def _reachable(facts: Facts) -> Proof | None:
    init = facts.get("primary_init")
    if init is None:
        return None
    found = re.search(r"PRIMARY reachable from the VPS with TLS: PostgreSQL (\S+)", init)
    return Proof(found is not None, found.group(0) if found else "primary_init.py did not reach it")


def _schemas(facts: Facts) -> Proof | None:
    init = facts.get("primary_init")
    if init is None:
        return None
    found = re.search(r"PRIMARY schemas: ([^\n]*)", init)
    tables = dict(re.findall(r"(\w+) \((\d+) tables\)", found.group(1))) if found else {}
    passed = {"config", "customer"} <= set(tables) and all(int(n) > 0 for n in tables.values())
    return Proof(passed, found.group(0) if found else "primary_init.py listed no schemas")


def _concurrency(facts: Facts) -> Proof | None:
    init, size = facts.get("primary_init"), facts.get("pool_size")
    if init is None or size is None:
        return None
    found = re.search(
        r"pool burst passed: [^\n]*?(\d+) clients through a pool of (\d+), \d+ transactions,"
        r" (\d+) queries, (\d+) answered, (\d+) errors[^\n]*",
        init,
    )
    if found is None:
        failed = re.search(r"pool burst failed[^\n]*", init)
        return Proof(False, failed.group(0) if failed else "primary_init.py ran no pool burst")
    clients, pool, queries, answered, errors = (int(g) for g in found.groups())
    return Proof(
        clients > pool == size and queries == answered > 0 and errors == 0,
        f"{found.group(0)} (the stack's pool size: {size})",
    )


def _primary_database(facts: Facts) -> Proof | None:
    db = facts.get("primary_database")
    if db is None:
        return None
    tables = dict(db.get("tables") or {})
    passed = bool(db.get("exists")) and {"config", "customer"} <= {
        s for s, n in tables.items() if n
    }
    return Proof(
        passed,
        f"database {db.get('name')} on PRIMARY: {'exists' if db.get('exists') else 'MISSING'}, "
        + ", ".join(f"{s} {n} tables" for s, n in sorted(tables.items())),
    )


# ----- the window's journal -------------------------------------------------------------------


def _journal(facts: Facts) -> dict[str, Any]:
    state = facts.get("journal")
    return state if isinstance(state, dict) else {}


def _backup(facts: Facts) -> Proof | None:
    state = _journal(facts)
    if not state:
        return None
    backup, split = state.get("backup") or {}, state.get("split") or {}
    frozen = bool(backup.get("sha256")) and backup.get("position") == split.get("source_position")
    return Proof(
        frozen,
        f"pg_dump -Fc of the frozen source in window {state.get('window')}: {backup.get('size')}"
        f" bytes, sha256 {str(backup.get('sha256'))[:16]}…, at the copy's write position"
        if frozen
        else f"no backup at the copy's write position ({backup or 'none'})",
    )


def _upload(facts: Facts) -> Proof | None:
    state = _journal(facts)
    if not state:
        return None
    up, backup = state.get("backup_uploaded") or {}, state.get("backup") or {}
    same = bool(up) and up.get("sha256") == backup.get("sha256") and bool(backup.get("sha256"))
    return Proof(
        same,
        f"s3://{up.get('bucket')}/{up.get('key')}: {up.get('size')} bytes read back, sha256 "
        f"{str(up.get('sha256'))[:16]}… {'equal to' if same else 'NOT equal to'} the dump's",
    )


def _data_db(facts: Facts) -> Proof | None:
    db, state = facts.get("data_database"), _journal(facts)
    if db is None or not state:
        return None
    recorded = state.get("data_database") or {}
    passed = (
        bool(db.get("owner"))
        and recorded.get("database") == db.get("name")
        and recorded.get("role") == db.get("owner")
    )
    return Proof(
        passed,
        f"DATA database {db.get('name')} owned by {db.get('owner') or 'nobody: MISSING'} on "
        f"DATA's server; the journal recorded {recorded or 'nothing'}",
    )


def _done(facts: Facts, step: str) -> dict[str, Any] | None:
    window = _journal(facts).get("window")
    for event in reversed(list(facts.get("events") or [])):
        if event.get("step") == step and event.get("window") == window:
            return event if event.get("event") == "done" else None
    return None


def _app_build(facts: Facts) -> Proof | None:
    state, build = _journal(facts), facts.get("build")
    if not state or build is None:
        return None
    done = _done(facts, "app-build")
    built = str(state.get("app_built") or "")
    passed = done is not None and bool(built) and bool(build.get("id"))
    took = f"done in {done.get('seconds')} s at {done.get('at')}" if done else "NOT done"
    return Proof(
        passed,
        f"journal: app-build (pnpm install, db:generate, both migrations, pnpm build) {took}, "
        f"for sources and .env digest {built[:16]}…; dist/build.json: build {build.get('id')} "
        f"at {build.get('builtAt')}",
    )


def _app_deployed(facts: Facts) -> Proof | None:
    state, build, health = _journal(facts), facts.get("build"), facts.get("health_split")
    if not state or build is None or health is None:
        return None
    serving = (
        isinstance(health, dict)
        and bool(build.get("id"))
        and health.get("build") == build.get("id")
    )
    same = bool(state.get("app_built")) and state.get("app_restarted") == state.get("app_built")
    return Proof(
        serving and same,
        f"/api/health answers with build {health.get('build') if isinstance(health, dict) else '?'}"
        f", dist/build.json holds {build.get('id')}; the journal's restarted digest "
        f"{'equals' if same else 'DIFFERS from'} the built one",
    )


def _restart(facts: Facts) -> Proof | None:
    state = _journal(facts)
    if not state:
        return None
    cutover = state.get("cutover") or {}
    done = _done(facts, "restart-split")
    restarted = bool(state.get("restarted_at")) and state.get("app_restarted") == state.get(
        "app_built"
    )
    return Proof(
        restarted and bool(cutover) and done is not None,
        f"pm2 restart --update-env at {state.get('restarted_at')} "
        f"({'done' if done else 'NOT done'} in the journal), through the cut-over gate "
        f"(horizon {cutover.get('horizon')})",
    )


def _migrations(facts: Facts) -> Proof | None:
    found = facts.get("migrations")
    if not found:
        return None
    parts, passed = [], True
    for name in ("primary", "data"):
        m = found.get(name) or {}
        ok = int(m.get("shipped") or 0) > 0 and m.get("applied") == m.get("shipped")
        passed = passed and ok
        parts.append(
            f"{name}: {m.get('applied')} of {m.get('shipped')} shipped migrations in "
            "public._prisma_migrations"
        )
    return Proof(passed, "; ".join(parts))


# ----- the .env and the app's health ----------------------------------------------------------


def _env(facts: Facts) -> tuple[dict[str, str], int] | None:
    env = facts.get("env")
    if env is None:
        return None
    return dict(env.get("values") or {}), int(env.get("mode") or 0)


def _parsed(url: str) -> PgUrl | None:
    try:
        return parse(url)
    except UsageError:
        return None


def _url_text(url: str) -> str:
    parsed = _parsed(url)
    if parsed is None:
        return "missing or malformed"
    shown = [f"{k}={v}" for k, v in parsed.query.items() if k in ("pgbouncer", "sslmode")]
    return " ".join([f"{parsed.host}:{parsed.port}/{parsed.dbname}", *shown])


def _env_primary(facts: Facts) -> Proof | None:
    env = _env(facts)
    if env is None:
        return None
    url = env[0].get("PRIMARY_DATABASE_URL", "")
    parsed = _parsed(url)
    q = parsed.query if parsed else {}
    ok = q.get("pgbouncer") == "true" and q.get("sslmode") == "verify-full"
    return Proof(ok, f".env on the VPS: PRIMARY_DATABASE_URL {_url_text(url)}")


def _env_data(facts: Facts) -> Proof | None:
    env = _env(facts)
    if env is None:
        return None
    url = env[0].get("DATA_DATABASE_URL", "")
    vps = str((facts.get("env") or {}).get("vps"))
    parsed = _parsed(url)
    host = parsed.host if parsed else None
    local = host is not None and (host in ("localhost", "127.0.0.1", "::1", vps) or host[:1] == "/")
    return Proof(
        local,
        f".env on the VPS: DATA_DATABASE_URL {_url_text(url)} "
        f"({'local to' if local else 'NOT local to'} the VPS at {vps})",
    )


def _env_split(facts: Facts) -> Proof | None:
    env = _env(facts)
    if env is None:
        return None
    value = env[0].get("SPLIT_DB_MODE")
    return Proof(value == "true", f".env on the VPS: SPLIT_DB_MODE={value}")


def _env_auth(facts: Facts) -> Proof | None:
    env = _env(facts)
    if env is None:
        return None
    length = len(env[0].get("AUTH_SECRET", ""))
    return Proof(length >= 32, f".env on the VPS: AUTH_SECRET of {length} characters (32+ asked)")


def _env_file(facts: Facts) -> Proof | None:
    env = _env(facts)
    if env is None:
        return None
    parts = [_env_primary(facts), _env_data(facts), _env_split(facts), _env_auth(facts)]
    mode = env[1]
    passed = all(p is not None and p.passed for p in parts) and mode == 0o600
    texts = [p.text.removeprefix(".env on the VPS: ") for p in parts if p is not None]
    return Proof(passed, f".env on the VPS, mode {mode:o}: " + "; ".join(texts))


def _health(body: Any, mode: str) -> Proof:
    if not isinstance(body, dict):
        return Proof(False, "/api/health: no answer")
    dbs = body.get("databases") or {}
    both = {"primary", "data"} <= set(dbs) and all(
        isinstance(d, dict) and d.get("connected") is True for d in dbs.values()
    )
    parts = [
        f"{n} {d.get('database')} {'connected' if d.get('connected') else 'NOT connected'}"
        for n, d in sorted(dbs.items())
        if isinstance(d, dict)
    ]
    ok = body.get("status") == "ok" and body.get("mode") == mode and both
    return Proof(
        ok,
        f"/api/health: status {body.get('status')}, mode {body.get('mode')}; " + ", ".join(parts),
    )


def _single_health(facts: Facts) -> Proof | None:
    return None if "health_single" not in facts else _health(facts["health_single"], "single")


def _split_health(facts: Facts) -> Proof | None:
    return None if "health_split" not in facts else _health(facts["health_split"], "split")


def _ca(facts: Facts) -> Proof | None:
    ca = facts.get("ca")
    if ca is None:
        return None
    same = bool(ca.get("expected")) and ca.get("found") == ca.get("expected")
    return Proof(
        same,
        f"{ca.get('path')} on the VPS {'holds' if same else 'does NOT hold'} the stack's "
        f"caCertificate ({len(str(ca.get('found') or ''))} bytes read back)",
    )


# ----- dbsplit's reports ----------------------------------------------------------------------


def _migrate(facts: Facts) -> Proof | None:
    data = facts.get("migrate_report")
    if data is None:
        return None
    tables = data.get("tables") or []
    copied = sum(int(t.get("rows") or 0) for t in tables)
    return Proof(
        bool(data.get("ok")) and bool(tables) and copied > 0,
        f"dbsplit migrate: {len(tables)} tables, {copied:,} rows copied in {data.get('seconds')} s"
        f" ({'ok' if data.get('ok') else 'NOT ok'})",
    )


def _verify_tables(facts: Facts) -> list[dict[str, Any]]:
    data = facts.get("verify_report") or {}
    return [t for t in data.get("tables") or [] if isinstance(t, dict)]


def _verify(facts: Facts) -> Proof | None:
    data = facts.get("verify_report")
    if data is None:
        return None
    tables = _verify_tables(facts)
    same = [t for t in tables if t.get("status") == "ok"]
    sequences = data.get("sequences") or []
    problems = list(data.get("problems") or []) + list(data.get("failures") or [])
    passed = bool(data.get("ok")) and bool(tables) and len(same) == len(tables) and not problems
    return Proof(
        passed,
        f"dbsplit verify: {len(same)} of {len(tables)} tables equal in rows and checksums "
        f"({data.get('hash')}), {len(sequences)} sequences, foreign keys validated on both "
        f"targets; {len(problems)} problem(s)" + (f": {problems[0]}" if problems else ""),
    )


def _verify_of(*names: str, prefix: str = "") -> Prover:
    def prove(facts: Facts) -> Proof | None:
        if facts.get("verify_report") is None:
            return None
        found = [
            t
            for t in _verify_tables(facts)
            if f"{t.get('schema')}.{t.get('name')}" in names
            or (prefix and f"{t.get('schema')}." == prefix)
        ]
        parts = [
            f"{t.get('schema')}.{t.get('name')} on {t.get('target')}: {t.get('source_rows')} "
            f"source rows, {t.get('target_rows')} target rows, {t.get('status')}"
            for t in found
        ]
        passed = bool(found) and all(
            t.get("status") == "ok" and t.get("source_rows") == t.get("target_rows") for t in found
        )
        passed = passed and (bool(prefix) or len(found) == len(names))
        return Proof(passed, "dbsplit verify: " + ("; ".join(parts) or f"no {names or prefix}"))

    return prove


# ----- after the window: check.py, the logs, the requests -------------------------------------


def _check_connections(name: str) -> Prover:
    def prove(facts: Facts) -> Proof | None:
        text, size = facts.get("check"), facts.get("pool_size")
        if text is None or size is None:
            return None
        found = re.search(rf"{name} connections in use: (\d+) \(pool size (\d+)\)", text)
        within = found is not None and (name != "primary" or int(found.group(1)) < int(size))
        return Proof(
            within,
            f"check.py: {found.group(0)}" if found else f"check.py counted no {name} connections",
        )

    return prove


def _pm2_logs(facts: Facts) -> Proof | None:
    text = facts.get("check")
    if text is None:
        return None
    scanned = re.search(r"pm2 logs: (\d+) recent lines scanned for errors", text)
    errors = re.findall(r"(\S+): (\d+) error line\(s\) in the recent logs", text)
    count = sum(int(n) for _, n in errors)
    lines = int(scanned.group(1)) if scanned else 0
    pattern = facts.get("pm2_pattern", "")
    return Proof(
        lines > 0 and bool(errors) and count == 0,
        f"check.py scanned {lines} recent pm2 log lines of {len(errors)} app(s) for "
        f"{pattern or 'errors'}: {count} error line(s)",
    )


def _pg_logs(facts: Facts) -> Proof | None:
    scan = facts.get("pg_logs")
    if scan is None:
        return None
    matches = list(scan.get("matches") or [])
    files = list(scan.get("files") or [])
    return Proof(
        bool(files) and not matches,
        f"{scan.get('lines')} lines of {', '.join(files) or 'NO log file'} since the split went "
        f"live scanned for {PG_LOG_PATTERN} (not '{PG_LOG_EXCLUDED}'): {len(matches)} found"
        + (f", e.g. {matches[0][:160]}" if matches else ""),
    )


def _live(facts: Facts) -> list[dict[str, Any]] | None:
    found = facts.get("live_requests")
    return None if found is None else [r for r in found if isinstance(r, dict)]


def _errors(facts: Facts) -> Proof | None:
    live = _live(facts)
    if live is None:
        return None
    failed = [r for r in live if not r.get("ok")]
    return Proof(
        bool(live) and not failed,
        f"{len(failed)} of {len(live)} requests failed while the app was live on the split"
        + (f", e.g. {failed[0].get('path')} status {failed[0].get('status')}" if failed else ""),
    )


def _latency(facts: Facts) -> Proof | None:
    live = _live(facts)
    if live is None:
        return None
    times = sorted(float(r.get("latency_ms") or 0) for r in live if r.get("ok"))
    if not times:
        return Proof(False, "no successful request while the app was live on the split")
    p50, p95 = times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.95))]
    return Proof(
        p95 <= LATENCY_BUDGET_MS,
        f"{len(times)} requests while live on the split: p50 {p50:.1f} ms, p95 {p95:.1f} ms "
        f"(budget {LATENCY_BUDGET_MS:.0f} ms)",
    )


# ----- the rollback (not checklist items: the rollback procedure's own evidence) ---------------


def _split_writes_refused(facts: Facts) -> Proof | None:
    output = facts.get("rollback_refused")
    if output is None:
        return None
    found = re.search(r"rollback refused: the app wrote in split mode[^\n]*", output)
    named = re.findall(r"(?:primary|data) \S+: (\d+) written", found.group(0)) if found else []
    return Proof(
        bool(named) and sum(int(n) for n in named) > 0,
        found.group(0)[:300] if found else "the rollback did not refuse",
    )


def _split_writes_dumped(facts: Facts) -> Proof | None:
    state = facts.get("journal_rollback")
    if state is None:
        return None
    dumped = state.get("split_writes_dumped") or {}
    tables = dumped.get("tables") or {}
    written = sum(int(c.get("written", 0)) for c in tables.values())
    uploaded = dumped.get("uploaded") or []
    return Proof(
        written > 0 and len(uploaded) > len([c for c in tables.values() if c.get("written")]),
        f"{written} rows written in split mode dumped to {dumped.get('folder')} and"
        f" {len(uploaded)} files to Spaces (each read back by sha256) before the rollback",
    )


#: Every proof, by evidence key (:data:`rehearsal.checklist.RULES` names these keys).
PROOFS: dict[str, Prover] = {
    "pulumi.tests": _pulumi,
    "dbaas.version": _dbaas_version,
    "dbaas.tls": _tls,
    "dbaas.hba": _hba,
    "deploy.ca": _ca,
    "primary.reachable": _reachable,
    "primary.schemas": _schemas,
    "primary.database": _primary_database,
    "load.concurrency": _concurrency,
    "env.file": _env_file,
    "env.primary": _env_primary,
    "env.data": _env_data,
    "env.split_mode": _env_split,
    "env.auth_secret": _env_auth,
    "app.single_health": _single_health,
    "app.split_health": _split_health,
    "app.migrations": _migrations,
    "app.build": _app_build,
    "app.deployed": _app_deployed,
    "deploy.data_db": _data_db,
    "deploy.backup": _backup,
    "deploy.backup_upload": _upload,
    "deploy.restart": _restart,
    "split.migrate": _migrate,
    "split.verify": _verify,
    "verify.users": _verify_of("config.users"),
    "verify.roles": _verify_of("config.roles"),
    "verify.permissions": _verify_of("config.permissions"),
    "verify.integration_runs": _verify_of("integration.runs"),
    "verify.carriers": _verify_of("reference.carriers"),
    "verify.services": _verify_of("reference.services"),
    "verify.delivery_matrix": _verify_of("reference.delivery_matrix"),
    "verify.workspace": _verify_of(prefix="workspace."),
    "check.pm2_logs": _pm2_logs,
    "check.pg_logs": _pg_logs,
    "check.primary_connections": _check_connections("primary"),
    "check.data_connections": _check_connections("data"),
    "load.errors": _errors,
    "load.latency": _latency,
    "rollback.split_writes": _split_writes_refused,
    "rollback.dumped": _split_writes_dumped,
    "smoke.identical": smoke.identical,
    **{key: smoke.prover(where, names) for key, (where, names) in smoke.SMOKE.items()},
}


def evaluate(facts: Facts) -> dict[str, tuple[bool, str]]:
    """Evidence from this run's facts: ``key -> (passed, text)``, for the proofs whose facts
    were recorded."""
    out: dict[str, tuple[bool, str]] = {}
    for key, prove in PROOFS.items():
        proof = prove(facts)
        if proof is not None:
            out[key] = (proof.passed, proof.text)
    return out
