"""Every ticked checklist item, pinned to the measured fact that ticks it, and unticked without it.

``good_facts()`` is what one passing rehearsal records (the deploys' printed lines in their own
format, the journal's state and events, a ``.env`` read back, dbsplit's reports, the smoke checks
in the journal's shape). ``TICKED`` pins each item those facts prove to its evidence key and a
piece of the measured value its evidence must name; ``BREAKS`` pins, for every key of the rule
table, the facts whose absence or falsehood must untick its items. Both are checked against
:data:`rehearsal.checklist.RULES` itself: a rule without a pinned case fails here.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from deploy.remote.journal import Journal
from deploy.remote.runtime import Context
from rehearsal import evidence
from rehearsal.checklist import RULES, Status, assess, counts, read_checklist
from rehearsal.proofs import PROOFS, evaluate
from rehearsal.smoke import ALL_CHECKS, SMOKE
from standins.postgres import PostgresServer
from tests.conftest import MakeDb

CHECKLIST = Path(__file__).resolve().parents[3] / "shared" / "docs" / "deployment-checklist.md"
WINDOW = "20261201T052700Z-a1b2"
SHA = "9f2c4e1b7a6d5c3e" * 4
POSITION = "e3b0c44298fc1c14"
CA = "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"

BURST = (
    "[vps] pool burst passed: pgbouncer=true: DEALLOCATE ALL, then fresh named statements,"
    " in each transaction: 30 clients through a pool of 15, 150 transactions, 450 queries,"
    " 450 answered, 0 errors, p50 6.24 ms, p95 16.35 ms, 0.42 s\n"
)
PRIMARY_INIT = (
    """\
[vps] PRIMARY reachable from the VPS with TLS: PostgreSQL 17.6
[vps] PRIMARY has all 3 of the app's migrations
[vps] PRIMARY schemas: config (5 tables), customer (3 tables)
"""
    + BURST
)
CHECK = """\
[vps] health: ok (status ok, mode split, primary and data connected)
[vps] data connections in use: 4 (pool size 15)
[vps] primary connections in use: 3 (pool size 15)
[vps] pm2 backoffice-api: online, 1 restarts
[vps] pm2 backoffice-web: online, 1 restarts
[vps] pm2 logs: 212 recent lines scanned for errors
[vps] backoffice-api: 0 error line(s) in the recent logs
[vps] backoffice-web: 0 error line(s) in the recent logs
"""
REFUSED = (
    "rollback refused: the app wrote in split mode since the cut-over: "
    "data integration.runs: 42 written, primary config.users: 0 written"
)


def _table(schema: str, name: str, target: str, rows: int) -> dict[str, Any]:
    return {
        "schema": schema,
        "name": name,
        "target": target,
        "status": "ok",
        "source_rows": rows,
        "target_rows": rows,
    }


TABLES = [
    _table("config", "users", "primary", 1200),
    _table("config", "roles", "primary", 12),
    _table("config", "permissions", "primary", 48),
    _table("integration", "runs", "data", 9000),
    _table("reference", "carriers", "data", 40),
    _table("reference", "services", "data", 160),
    _table("reference", "delivery_matrix", "data", 160000),
    _table("workspace", "imports", "data", 300),
    _table("workspace", "import_rows", "data", 90000),
]


def _smoke(mode: str) -> dict[str, Any]:
    database = {
        "log in": "primary",
        "session": "primary",
        "manage roles": "primary",
        "create user": "primary",
    }
    return {
        "at": "2026-12-01T05:29:10Z",
        "mode": mode,
        "checks": [
            {
                "name": name,
                "ok": True,
                "status": 200,
                "ms": 12.5,
                "database": database.get(name, "data"),
                "detail": "",
            }
            for name in ALL_CHECKS
        ],
    }


def good_facts() -> dict[str, Any]:
    """What one passing rehearsal measures."""
    url = "postgresql://handled_app:pw@10.231.4.1:25061/handled-pool"
    return {
        "pulumi": {"returncode": 0, "summary": "118 passed in 41.20s"},
        "dbaas_version": "PostgreSQL 17.6 (Debian 17.6-1.pgdg120+1)",
        "hba": {
            "lines": ["hostssl all all 10.231.4.2/32 scram-sha-256"],
            "vps": "10.231.4.2",
        },
        "outside": 'connection failed: FATAL: no pg_hba.conf entry for host "10.231.4.1"',
        "primary_init": PRIMARY_INIT,
        "pool_size": 15,
        "journal": {
            "window": WINDOW,
            "backup": {"size": 1_059_000_000, "sha256": SHA, "position": POSITION},
            "split": {"source_position": POSITION},
            "backup_uploaded": {
                "bucket": "handled-prod-pg-backups",
                "key": f"pre-split/handled-{WINDOW}.dump",
                "sha256": SHA,
                "size": 1_059_000_000,
            },
            "data_database": {"role": "handled_data_owner", "database": "handled_data"},
            "app_built": "d1" * 32,
            "app_restarted": "d1" * 32,
            "restarted_at": "2026-12-01T05:29:02Z",
            "cutover": {"horizon": {"primary": "812", "data": "1204"}},
            "smoke": {"cutover": _smoke("split"), "rollback": _smoke("single")},
        },
        "events": [
            {"window": WINDOW, "step": "app-build", "event": "start", "at": "05:28:40"},
            {
                "window": WINDOW,
                "step": "app-build",
                "event": "done",
                "at": "05:28:52",
                "seconds": 12.1,
            },
            {"window": WINDOW, "step": "restart-split", "event": "done", "seconds": 1.2},
        ],
        "env": {
            "values": {
                "SPLIT_DB_MODE": "true",
                "PRIMARY_DATABASE_URL": url + "?sslmode=verify-full&pgbouncer=true",
                "DATA_DATABASE_URL": "postgresql://handled_data_owner:pw@10.231.4.2:5433/handled_data",
                "AUTH_SECRET": "s" * 43,
            },
            "mode": 0o600,
            "vps": "10.231.4.2",
        },
        "ca": {"path": "/home/deploy/handled/certs/primary-ca.crt", "found": CA, "expected": CA},
        "health_single": {
            "status": "ok",
            "mode": "single",
            "databases": {
                "primary": {"database": "handled", "connected": True},
                "data": {"database": "handled", "connected": True},
            },
        },
        "health_split": {
            "status": "ok",
            "mode": "split",
            "build": "20261201T052851-0a1b2c",
            "databases": {
                "primary": {"database": "handled_5e1f", "connected": True},
                "data": {"database": "handled_data", "connected": True},
            },
        },
        "build": {"id": "20261201T052851-0a1b2c", "builtAt": "2026-12-01T05:28:51Z"},
        "migrations": {
            "primary": {"applied": 3, "shipped": 3},
            "data": {"applied": 4, "shipped": 4},
        },
        "primary_database": {
            "name": "handled_5e1f",
            "exists": True,
            "tables": {"config": 5, "customer": 3},
        },
        "data_database": {"name": "handled_data", "owner": "handled_data_owner"},
        "migrate_report": {
            "ok": True,
            "seconds": 12.6,
            "tables": [{"rows": t["source_rows"]} for t in TABLES],
        },
        "verify_report": {
            "ok": True,
            "hash": "hash_record_extended",
            "tables": TABLES,
            "sequences": [{"name": "users_id_seq"}],
            "problems": [],
            "failures": [],
        },
        "check": CHECK,
        "pm2_pattern": r"(?i)\b(error|fatal|unhandled|ECONNREFUSED)\b",
        "pg_logs": {"files": ["PRIMARY", "DATA"], "lines": 57, "matches": []},
        "live_requests": [
            {"at": 60.0 + i / 10, "ok": True, "status": 200, "latency_ms": 8.0 + i % 7, "path": "/"}
            for i in range(150)
        ],
        "rollback_refused": REFUSED,
        "journal_rollback": {
            "split_writes_dumped": {
                "folder": "/home/deploy/backups/split-writes",
                "tables": {"integration.runs": {"written": 42}},
                "uploaded": [{"key": "a"}, {"key": "b"}],
            }
        },
        "smoke": {"cutover": _smoke("split"), "rollback": _smoke("single")},
    }


#: Every item the good facts prove: its evidence key, and a measured value its text must name.
TICKED: dict[str, tuple[str, str]] = {
    "Digital Ocean DBaaS PostgreSQL 17 instance provisioned": ("dbaas.version", "17.6"),
    "Basic 1GB plan (or higher) selected": ("pulumi.tests", "118 passed"),
    "NYC3 region (same as VPS)": ("pulumi.tests", "118 passed"),
    "Connection pooling enabled (PgBouncer, transaction mode)": ("pulumi.tests", "exit 0"),
    "Pool size set to 15": ("pulumi.tests", "118 passed"),
    "SSL/TLS enabled and required": ("dbaas.tls", "all hostssl"),
    "Automated daily backups configured": ("pulumi.tests", "118 passed"),
    "Maintenance window configured (off-peak hours)": ("pulumi.tests", "118 passed"),
    "Network configuration": ("dbaas.hba", "no pg_hba.conf entry"),
    "VPS IP address whitelisted on DBaaS": ("dbaas.hba", "10.231.4.2/32"),
    "SSL CA certificate downloaded": ("deploy.ca", f"{len(CA)} bytes"),
    "Connection string tested from VPS": ("primary.reachable", "PostgreSQL 17.6"),
    "Environment variables prepared": ("env.file", "mode 600"),
    "`PRIMARY_DATABASE_URL` with connection pooling params": ("env.primary", "pgbouncer=true"),
    "`DATA_DATABASE_URL` for VPS local": ("env.data", "10.231.4.2:5433/handled_data"),
    "`SPLIT_DB_MODE=true`": ("env.split_mode", "SPLIT_DB_MODE=true"),
    "Secure `AUTH_SECRET` generated": ("env.auth_secret", "43 characters"),
    "Local testing completed (single-DB mode)": ("smoke.single", "single mode"),
    "Single-DB mode tested": ("smoke.single", "log in: ok"),
    "Set `SPLIT_DB_MODE=false`": ("app.single_health", "mode single"),
    "Tested authentication flow": ("smoke.single_login", "log in: ok, HTTP 200"),
    "Tested data imports": ("smoke.single_upload", "upload CSV (through the web): ok"),
    "Tested transformations": ("smoke.single_transform", "transform: ok"),
    "Split-DB mode tested locally": ("smoke.split", "split mode"),
    "Created `handled_primary_dev` database": ("primary.database", "config 5 tables"),
    "Created `handled_data_dev` database": ("deploy.data_db", "owned by handled_data_owner"),
    "Set `SPLIT_DB_MODE=true`": ("env.split_mode", "SPLIT_DB_MODE=true"),
    "Ran both migration sets": ("app.migrations", "4 of 4"),
    "All features work identically to single-DB mode": ("smoke.identical", "single mode"),
    "Connect to DBaaS from VPS": ("primary.reachable", "PostgreSQL 17.6"),
    "Run PRIMARY migrations": ("app.migrations", "3 of 3"),
    "Verify schema creation": ("primary.schemas", "customer (3 tables)"),
    "Verify tables created": ("primary.schemas", "config (5 tables)"),
    "Test connection pooling": ("load.concurrency", "30 clients through a pool of 15"),
    "Verified `pgbouncer=true` in connection string": ("env.primary", "pgbouncer=true"),
    "Tested concurrent connections": ("load.concurrency", "the stack's pool size: 15"),
    "Staging PRIMARY DB created (separate DBaaS or same instance)": (
        "primary.database",
        "handled_5e1f",
    ),
    "Staging DATA DB created on staging VPS": ("deploy.data_db", "handled_data"),
    "Ran `migrate-production-data.sh` on staging": ("split.migrate", "9 tables"),
    "Verified all row counts match": ("split.verify", "9 of 9 tables"),
    "Users": ("verify.users", "1200 source rows, 1200 target rows"),
    "Roles": ("verify.roles", "12 source rows"),
    "Permissions": ("verify.permissions", "48 source rows"),
    "Integration runs": ("verify.integration_runs", "9000 source rows"),
    "Carriers": ("verify.carriers", "40 source rows"),
    "Services": ("verify.services", "160 source rows"),
    "Delivery matrix": ("verify.delivery_matrix", "160000 source rows"),
    "Workspace tables": ("verify.workspace", "workspace.import_rows"),
    "Deployed application code to staging": ("app.deployed", "20261201T052851-0a1b2c"),
    "Set `SPLIT_DB_MODE=true` on staging": ("env.split_mode", "SPLIT_DB_MODE=true"),
    "Tested all features work": ("smoke.split", "integration history: ok"),
    "User login": ("smoke.login", "log in: ok"),
    "Role management": ("smoke.roles", "manage roles: ok"),
    "File imports": ("smoke.upload", "upload CSV (through the web): ok"),
    "Transformations": ("smoke.transform", "transform: ok"),
    "Exports": ("smoke.export", "export: ok"),
    "Integration history": ("smoke.history", "integration history: ok"),
    "Session caching working (check logs)": ("smoke.session_cache", "session cache: ok"),
    "Backup everything": ("deploy.backup", "1059000000 bytes"),
    "Upload backup to external storage": ("deploy.backup_upload", "equal to the dump's"),
    "Step 1: Run data migration": ("split.migrate", "rows copied"),
    "Step 2: Validate migration": ("split.verify", "9 of 9"),
    "All row counts match": ("split.verify", "9 of 9"),
    "No data loss": ("split.verify", "0 problem(s)"),
    "Foreign keys intact": ("split.verify", "foreign keys validated"),
    "Step 3: Update application environment": ("env.file", "SPLIT_DB_MODE=true"),
    "Step 4: Rebuild application": ("app.build", "done in 12.1 s"),
    "Step 5: Restart services": ("deploy.restart", "2026-12-01T05:29:02Z"),
    "Step 6: Verify health": ("app.split_health", "mode split"),
    "Health check shows both databases connected": ("app.split_health", "data handled_data"),
    "User can log in successfully": ("smoke.login", "log in: ok"),
    "Can create/edit users": ("smoke.users", "edit user: ok"),
    "Can manage roles and permissions": ("smoke.roles", "manage roles: ok"),
    "File upload works": ("smoke.upload", "upload CSV (through the web): ok"),
    "Data transformation works": ("smoke.transform", "transform: ok"),
    "Exports work": ("smoke.export", "export: ok"),
    "No errors in PM2 logs": ("check.pm2_logs", "212 recent pm2 log lines"),
    "No errors in PostgreSQL logs": ("check.pg_logs", "57 lines of PRIMARY, DATA"),
    "Application logs: `pm2 logs backoffice-api`": ("check.pm2_logs", "0 error line(s)"),
    "PRIMARY DB connections": ("check.primary_connections", "3 (pool size 15)"),
    "DATA DB connections": ("check.data_connections", "4 (pool size 15)"),
    "Response times": ("load.latency", "150 requests"),
    "Error rates": ("load.errors", "0 of 150"),
    "Session cache effectiveness": ("smoke.session_cache", "session cache: ok"),
    "Monitoring alerts configured": ("pulumi.tests", "118 passed"),
}

Break = tuple[str, Callable[[dict[str, Any]], None]]


def _drop(*path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(facts: dict[str, Any]) -> None:
        node = facts
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return mutate


def _set(value: object, *path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(facts: dict[str, Any]) -> None:
        node = facts
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return mutate


def _replace(key: str, old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def mutate(facts: dict[str, Any]) -> None:
        assert old in facts[key], f"{old!r} is not in the pinned {key}"
        facts[key] = facts[key].replace(old, new)

    return mutate


def _smoke_check(phase: str, name: str, **changes: object) -> Callable[[dict[str, Any]], None]:
    def mutate(facts: dict[str, Any]) -> None:
        checks = facts["smoke"][phase]["checks"]
        found = [c for c in checks if c["name"] == name]
        assert found, f"no smoke check {name!r} pinned"
        if changes:
            found[0].update(changes)
        else:
            checks.remove(found[0])

    return mutate


def _smoke_breaks(key: str) -> list[Break]:
    (phase, mode), names = SMOKE[key]
    other = "single" if mode == "split" else "split"
    return [
        ("no smoke record", _drop("smoke")),
        (f"no {phase} record", _drop("smoke", phase)),
        (f"recorded in {other} mode", _set(other, "smoke", phase, "mode")),
        *((f"{n} failed", _smoke_check(phase, n, ok=False, status=500)) for n in names),
        *((f"{n} not run", _smoke_check(phase, n)) for n in names),
    ]


def _verify_breaks(name: str) -> list[Break]:
    def differs(facts: dict[str, Any]) -> None:
        for t in facts["verify_report"]["tables"]:
            if f"{t['schema']}.{t['name']}" == name:
                t["status"], t["target_rows"] = "differs", t["source_rows"] - 1

    def missing(facts: dict[str, Any]) -> None:
        tables = facts["verify_report"]["tables"]
        facts["verify_report"]["tables"] = [
            t for t in tables if f"{t['schema']}.{t['name']}" != name
        ]

    return [
        ("no verify report", _drop("verify_report")),
        (f"{name} differs", differs),
        (f"{name} missing", missing),
    ]


BROKEN_ENV = "postgresql://handled_app:pw@10.231.4.1:25060/handled?sslmode=require"

#: For every evidence key of the rule table: the facts that, missing or false, untick its items.
BREAKS: dict[str, list[Break]] = {
    "pulumi.tests": [
        ("no test run", _drop("pulumi")),
        ("exit 1", _set(1, "pulumi", "returncode")),
        ("a failure", _set("1 failed, 117 passed in 40s", "pulumi", "summary")),
        ("nothing collected", _set("no tests ran in 0.01s", "pulumi", "summary")),
    ],
    "dbaas.version": [
        ("no version read", _drop("dbaas_version")),
        ("PostgreSQL 16", _set("PostgreSQL 16.4", "dbaas_version")),
    ],
    "dbaas.tls": [
        ("no hba read", _drop("hba")),
        ("a plain host line", _set(["host all all 10.231.4.2/32 md5"], "hba", "lines")),
        ("no TCP line", _set([], "hba", "lines")),
        ("no TLS session", _replace("primary_init", "reachable from the VPS with TLS", "-")),
    ],
    "dbaas.hba": [
        ("no probe", _drop("outside")),
        ("not probed", _set(None, "outside")),
        ("let in from elsewhere", _set("connected", "outside")),
        ("another address admitted", _set(["hostssl all all 0.0.0.0/0 md5"], "hba", "lines")),
    ],
    "deploy.ca": [
        ("no CA read", _drop("ca")),
        ("another CA", _set("-----BEGIN CERTIFICATE-----\nX\n", "ca", "found")),
        ("no file", _set("", "ca", "found")),
    ],
    "primary.reachable": [
        ("no init output", _drop("primary_init")),
        ("not reached", _replace("primary_init", "PRIMARY reachable", "PRIMARY unreachable")),
    ],
    "primary.schemas": [
        ("no init output", _drop("primary_init")),
        ("no customer schema", _replace("primary_init", ", customer (3 tables)", "")),
        ("empty schema", _replace("primary_init", "config (5 tables)", "config (0 tables)")),
    ],
    "primary.database": [
        ("not read", _drop("primary_database")),
        ("missing", _set(False, "primary_database", "exists")),
        ("no tables", _set({"config": 5}, "primary_database", "tables")),
    ],
    "load.concurrency": [
        ("no init output", _drop("primary_init")),
        ("failed", _replace("primary_init", "pool burst passed", "pool burst failed")),
        ("errors", _replace("primary_init", "450 answered, 0 errors", "449 answered, 1 errors")),
        ("not past the pool", _replace("primary_init", "30 clients", "15 clients")),
        ("another pool", _replace("primary_init", "a pool of 15", "a pool of 25")),
    ],
    "env.file": [
        ("no .env read", _drop("env")),
        ("world-readable", _set(0o644, "env", "mode")),
        ("no split mode", _set("false", "env", "values", "SPLIT_DB_MODE")),
    ],
    "env.primary": [
        ("no .env read", _drop("env")),
        ("direct URL", _set(BROKEN_ENV, "env", "values", "PRIMARY_DATABASE_URL")),
        ("missing", _drop("env", "values", "PRIMARY_DATABASE_URL")),
    ],
    "env.data": [
        ("no .env read", _drop("env")),
        ("remote DATA", _set(BROKEN_ENV, "env", "values", "DATA_DATABASE_URL")),
        ("missing", _drop("env", "values", "DATA_DATABASE_URL")),
    ],
    "env.split_mode": [
        ("no .env read", _drop("env")),
        ("false", _set("false", "env", "values", "SPLIT_DB_MODE")),
        ("missing", _drop("env", "values", "SPLIT_DB_MODE")),
    ],
    "env.auth_secret": [
        ("no .env read", _drop("env")),
        ("short", _set("s" * 31, "env", "values", "AUTH_SECRET")),
        ("missing", _drop("env", "values", "AUTH_SECRET")),
    ],
    "app.single_health": [
        ("no health read", _drop("health_single")),
        ("no answer", _set(None, "health_single")),
        ("split mode", _set("split", "health_single", "mode")),
        ("degraded", _set("degraded", "health_single", "status")),
    ],
    "app.split_health": [
        ("no health read", _drop("health_split")),
        ("single mode", _set("single", "health_split", "mode")),
        ("DATA down", _set(False, "health_split", "databases", "data", "connected")),
    ],
    "app.migrations": [
        ("not read", _drop("migrations")),
        ("one pending", _set(2, "migrations", "primary", "applied")),
        ("none shipped", _set({"applied": 0, "shipped": 0}, "migrations", "data")),
    ],
    "app.build": [
        ("no journal", _drop("journal")),
        ("no build stamp", _set({}, "build")),
        ("build not done", _set([], "events")),
        (
            "build failed",
            _set([{"window": WINDOW, "step": "app-build", "event": "failed"}], "events"),
        ),
        ("another window's build", _set("other", "journal", "window")),
    ],
    "app.deployed": [
        ("no build stamp read", _drop("build")),
        ("an older build serves", _set("20261130T000000-ffffff", "health_split", "build")),
        ("restarted another build", _set("e2" * 32, "journal", "app_restarted")),
    ],
    "deploy.data_db": [
        ("not read", _drop("data_database")),
        ("missing", _set(None, "data_database", "owner")),
        ("another owner than recorded", _set("postgres", "data_database", "owner")),
    ],
    "deploy.backup": [
        ("no journal", _drop("journal")),
        ("no backup", _drop("journal", "backup")),
        ("another position", _set("0000", "journal", "split", "source_position")),
    ],
    "deploy.backup_upload": [
        ("no journal", _drop("journal")),
        ("not uploaded", _drop("journal", "backup_uploaded")),
        ("another checksum", _set("0" * 64, "journal", "backup_uploaded", "sha256")),
    ],
    "deploy.restart": [
        ("no journal", _drop("journal")),
        ("not restarted", _drop("journal", "restarted_at")),
        ("no cut-over", _drop("journal", "cutover")),
        ("restart not done", _set([], "events")),
    ],
    "split.migrate": [
        ("no report", _drop("migrate_report")),
        ("not ok", _set(False, "migrate_report", "ok")),
        ("nothing copied", _set([], "migrate_report", "tables")),
    ],
    "split.verify": [
        ("no report", _drop("verify_report")),
        ("not ok", _set(False, "verify_report", "ok")),
        ("a problem", _set(["foreign key fk_x not validated"], "verify_report", "problems")),
        ("no table", _set([], "verify_report", "tables")),
    ],
    "verify.users": _verify_breaks("config.users"),
    "verify.roles": _verify_breaks("config.roles"),
    "verify.permissions": _verify_breaks("config.permissions"),
    "verify.integration_runs": _verify_breaks("integration.runs"),
    "verify.carriers": _verify_breaks("reference.carriers"),
    "verify.services": _verify_breaks("reference.services"),
    "verify.delivery_matrix": _verify_breaks("reference.delivery_matrix"),
    "verify.workspace": [
        ("no report", _drop("verify_report")),
        *_verify_breaks("workspace.import_rows")[1:2],
        ("no workspace table", _set(TABLES[:7], "verify_report", "tables")),
    ],
    "check.pm2_logs": [
        ("check.py not run", _drop("check")),
        ("an error line", _replace("check", "backoffice-api: 0 error", "backoffice-api: 2 error")),
        ("no line scanned", _replace("check", "212 recent lines", "0 recent lines")),
    ],
    "check.pg_logs": [
        ("not scanned", _drop("pg_logs")),
        ("an ERROR line", _set(["ERROR:  relation x does not exist"], "pg_logs", "matches")),
        ("no log file", _set([], "pg_logs", "files")),
    ],
    "check.primary_connections": [
        ("check.py not run", _drop("check")),
        (
            "pool exhausted",
            _replace("check", "primary connections in use: 3", "primary connections in use: 15"),
        ),
        ("not counted", _replace("check", "primary connections in use", "primary: error")),
    ],
    "check.data_connections": [
        ("check.py not run", _drop("check")),
        ("not counted", _replace("check", "data connections in use", "data: error")),
    ],
    "load.errors": [
        ("no requests recorded", _drop("live_requests")),
        ("no request", _set([], "live_requests")),
        (
            "one failed",
            _set([{"ok": False, "status": 503, "path": "/api/health"}], "live_requests"),
        ),
    ],
    "load.latency": [
        ("no requests recorded", _drop("live_requests")),
        ("slow", _set([{"ok": True, "latency_ms": 2500.0}] * 20, "live_requests")),
        ("none succeeded", _set([{"ok": False, "latency_ms": 1.0}], "live_requests")),
    ],
    "smoke.identical": [
        ("no smoke record", _drop("smoke")),
        ("no single-mode record", _drop("smoke", "rollback")),
        ("export fails on the split", _smoke_check("cutover", "export", ok=False)),
        ("login fails on the old database", _smoke_check("rollback", "log in", ok=False)),
    ],
    **{key: _smoke_breaks(key) for key in SMOKE},
}


def _rule_keys() -> set[str]:
    return {rule.key for rule in RULES}


def _key_of(item: Any) -> str | None:
    return next((r.key for r in RULES if r.matches(item)), None)


def _items_of(key: str, assessments: list[Any]) -> list[Any]:
    return [a for a in assessments if _key_of(a.item) == key]


@pytest.fixture(scope="module")
def items() -> list[Any]:
    return read_checklist(CHECKLIST)


def _assess(items: list[Any], facts: dict[str, Any]) -> list[Any]:
    return assess(items, evaluate(facts))


def test_every_rule_has_a_proof_and_pinned_breaks() -> None:
    keys = _rule_keys()
    assert len(keys) >= 40, "the rule table is read, not an empty list"
    assert keys <= set(PROOFS), f"rules without a proof: {sorted(keys - set(PROOFS))}"
    assert set(BREAKS) == keys, (
        f"rules without pinned breaks: {sorted(keys - set(BREAKS))}; "
        f"pinned breaks for no rule: {sorted(set(BREAKS) - keys)}"
    )
    assert all(BREAKS[k] for k in keys)
    assert {k for k, _ in TICKED.values()} == keys, "every rule ticks some pinned item"


def test_the_good_facts_tick_exactly_the_pinned_items_with_their_measured_values(
    items: list[Any],
) -> None:
    result = assess(items, evaluate(good_facts()))
    proven = {a.item.text: a for a in result if a.status is Status.PROVEN}
    assert sorted(proven) == sorted(TICKED)
    evidence = evaluate(good_facts())
    for text, (key, measured) in TICKED.items():
        a = proven[text]
        assert next(r for r in RULES if r.matches(a.item)).key == key, text
        assert a.evidence == evidence[key][1], text
        assert measured in a.evidence, f"{text!r}: {measured!r} not in {a.evidence!r}"
    tally = counts(result)
    assert tally[Status.PROVEN] == len(TICKED)
    assert tally[Status.FAILED] == 0
    assert sum(tally.values()) == len(items) == 148


@pytest.mark.parametrize("key", sorted(BREAKS))
def test_each_pinned_break_unticks_the_items_of_its_rule(key: str, items: list[Any]) -> None:
    assert key in _rule_keys(), f"{key} is pinned but no rule uses it"
    before = _items_of(key, _assess(items, good_facts()))
    assert before, f"{key} ticks no item"
    assert all(a.status is Status.PROVEN for a in before)
    for label, mutate in BREAKS[key]:
        facts = copy.deepcopy(good_facts())
        mutate(facts)
        after = _items_of(key, _assess(items, facts))
        wrong = [a.item.text for a in after if a.status is Status.PROVEN]
        assert not wrong, f"{key} with {label}: still proven: {wrong}"
        assert all(a.status in (Status.FAILED, Status.NOT_EXERCISED) for a in after)


def test_without_facts_nothing_is_proven_and_smoke_items_say_why(items: list[Any]) -> None:
    result = assess(items, evaluate({}))
    assert not [a for a in result if a.status in (Status.PROVEN, Status.FAILED)]
    smoke_items = [a for a in result if next((r for r in RULES if r.matches(a.item)), None)]
    smoke_items = [a for a in smoke_items if a.evidence == "no smoke check recorded"]
    assert {a.item.text for a in smoke_items} == {
        t for t, (k, _) in TICKED.items() if k.startswith("smoke.")
    }


def test_items_the_rehearsal_cannot_prove_give_their_reason(items: list[Any]) -> None:
    by_text = {a.item.text: a for a in assess(items, evaluate(good_facts()))}
    for text, reason in (
        ("Created staging copy of production database", "generates synthetic data"),
        ("Staging VPS configured", "local stand-in"),
        ("Prisma clients generate successfully", "no Prisma"),
        ("Started dev server: `pnpm dev`", "never `pnpm dev`"),
        ("Hour 1: Check every 15 minutes", "48-hour watch"),
        ("Checked pool size in Digital Ocean UI", "UI is not reachable"),
        ("Data isolation tests pass", "test suite"),
        ("Old database archived but kept as backup", "finalize.py"),
    ):
        assert by_text[text].status is Status.NOT_EXERCISED, text
        assert reason in by_text[text].evidence, (text, by_text[text].evidence)


def test_no_password_reaches_the_evidence() -> None:
    text = json.dumps(evaluate(good_facts()))
    assert ":pw@" not in text
    assert "s" * 32 not in text


# ----- the facts read from files --------------------------------------------------------------


def test_journal_events_and_state_are_read_from_the_deploys_own_journal(tmp_path: Path) -> None:
    """The real journal (``deploy.remote.journal.Journal``) writes; the rehearsal reads back."""
    with contextlib.ExitStack() as stack:
        ctx = Context({"run": "r1", "runbook": "production", "state_dir": str(tmp_path)}, stack)
        journal = Journal(ctx)
        window = journal.window()
        with journal.step("app-build") as step:
            step.update("app-build", app_built="d1" * 32)
    state = evidence.read_json_object(tmp_path / "window.json")
    events = evidence.journal_events(tmp_path / "journal.jsonl", window)
    assert state["window"] == window
    assert [e["event"] for e in events if e["step"] == "app-build"] == ["start", "facts", "done"]
    assert evidence.journal_events(tmp_path / "journal.jsonl", "another") == []
    assert evidence.journal_events(tmp_path / "missing.jsonl", window) == []
    assert evidence.read_json_object(tmp_path / "missing.json") == {}


def test_the_log_scan_counts_lines_from_the_mark_and_names_the_error_lines(tmp_path: Path) -> None:
    primary, data = tmp_path / "primary.log", tmp_path / "data.log"
    primary.write_text("2026 LOG:  before the split\n", encoding="utf-8")
    marks = {primary: primary.stat().st_size}
    with primary.open("a", encoding="utf-8") as handle:
        handle.write("2026 LOG:  checkpoint starting\n")
        handle.write("2026 FATAL:  terminating connection due to administrator command\n")
    data.write_text('2026 LOG:  ok\n2026 ERROR:  relation "x" does not exist\n', encoding="utf-8")
    scan = evidence.scan_logs({"PRIMARY": primary, "DATA": data, "GONE": tmp_path / "no"}, marks)
    assert scan["files"] == ["PRIMARY", "DATA"]
    assert scan["lines"] == 4
    assert scan["matches"] == ['2026 ERROR:  relation "x" does not exist']


APP = Path(__file__).resolve().parents[2] / "standins" / "app"


def test_the_catalog_readers_count_tables_and_applied_migrations(
    data_pg: PostgresServer, make_db: MakeDb
) -> None:
    """On a real database, the fixture app's own PRIMARY migration applied and recorded the way
    its migrate script records it (its CREATE TABLE, read from the script); a rolled-back and an
    unfinished row do not count."""
    db = make_db(data_pg)
    folder = APP / "prisma" / "primary" / "migrations"
    script = (APP / "scripts" / "migrate.js").read_text(encoding="utf-8")
    create = script.split("const CREATE_TABLE = `", 1)[1].split("`", 1)[0]
    shipped = sorted(folder.glob("*/migration.sql"))
    with data_pg.connect(db) as conn:
        assert evidence.applied_migrations(conn) == 0, "no history table yet"
        assert evidence.schema_tables(conn) == {}
        for migration in shipped:
            conn.execute(migration.read_text(encoding="utf-8").encode())
        conn.execute(create.encode())
        insert = sql.SQL(
            "INSERT INTO public._prisma_migrations (id, checksum, migration_name, finished_at,"
            " rolled_back_at) VALUES (%s, 'c', %s, {}, {})"
        )
        for i, migration in enumerate(shipped):
            conn.execute(insert.format(sql.SQL("now()"), sql.NULL), (str(i), migration.parent.name))
        conn.execute(insert.format(sql.SQL("now()"), sql.SQL("now()")), ("rb", "rolled_back"))
        conn.execute(insert.format(sql.NULL, sql.NULL), ("half", "unfinished"))
        applied = evidence.applied_migrations(conn)
        tables = evidence.schema_tables(conn)
    assert evidence.shipped_migrations(folder) == len(shipped) == applied > 0
    assert evidence.shipped_migrations(APP / "no-such-folder") == 0
    assert set(tables) == {"config", "customer"}
    assert all(n > 0 for n in tables.values())


def test_every_smoke_check_the_report_reads_is_one_the_window_runs() -> None:
    """The report's check names are the environment's own (a renamed check would never tick)."""
    import runpy

    declared = {
        check["name"]
        for check in runpy.run_path(str(Path(__file__).parents[2] / "group_data" / "all.py"))[
            "smoke_checks"
        ]
    }
    wanted = {name for _, names in SMOKE.values() for name in names}
    assert wanted, "the report reads no smoke check"
    assert wanted <= declared, f"not in group_data/all.py smoke_checks: {sorted(wanted - declared)}"


def test_each_phase_smoke_run_is_summarized_with_its_failures() -> None:
    from rehearsal.model import summarize_smoke
    from rehearsal.report import smoke_line

    split = _smoke("split")
    split["checks"][0] = split["checks"][0] | {"ok": False, "ms": 900.0}
    runs = summarize_smoke({"cutover": split, "rollback": _smoke("single"), "check": {}})
    assert [(r.phase, r.mode, r.total) for r in runs] == [
        ("cutover", "split", len(ALL_CHECKS)),
        ("rollback", "single", len(ALL_CHECKS)),
    ]
    cut = runs[0]
    assert (cut.passed, cut.failed, cut.slowest_ms) == (len(ALL_CHECKS) - 1, (ALL_CHECKS[0],), 900)
    assert smoke_line(cut).endswith(f"passed; failed: {ALL_CHECKS[0]}")
    assert runs[1].passed == runs[1].total
    assert runs[1].median_ms == 12.5
