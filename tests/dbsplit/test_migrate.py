"""`dbsplit migrate` end to end: PG15 source -> PRIMARY (DBaaS, doadmin, TLS) + DATA (PG17).

Checked by comparing the databases here (rows, sequences, keys, owners, triggers) and by
`dbsplit verify`.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.dbsplit.helpers import (
    DATA_SCHEMAS,
    PRIMARY_SCHEMAS,
    SplitEnv,
    assert_targets_equal_source,
    foreign_keys,
)

MIGRATE = ("migrate", "--drop-cross-db-fks", "--jobs", "2", "--split-larger-than", "1MB")


def test_migrate_copies_every_case_exactly(split_env: SplitEnv, tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    proc = split_env.run(*MIGRATE, "--report", str(report_path))
    assert proc.returncode == 0, proc.stderr
    assert "verify passed" in proc.stderr
    assert_targets_equal_source(split_env)

    q = split_env.query
    # No trigger fired during the load, and the triggers exist (enabled) afterwards.
    assert q("primary", "SELECT count(*) FROM config.users WHERE updated_at < '2000-01-01'") == [
        (0,)
    ]
    assert q("data", "SELECT count(*) FROM workspace.jobs WHERE attempts = 999") == [(0,)]
    assert q("primary", "SELECT tgenabled FROM pg_trigger WHERE tgname = 'users_touch'") == [("O",)]
    # Identity ALWAYS values kept; generated columns computed by the target.
    assert q("primary", "SELECT min(id), max(id) FROM config.users") == [(3, 900)]
    assert q("primary", "SELECT name_upper FROM config.users WHERE id = 3") == [("ÑAME 1 日本語",)]
    # Everything owned by the connecting, non-superuser role.
    owners = q(
        "primary",
        "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY(%s)",
        (list(PRIMARY_SCHEMAS),),
    )
    assert owners == [(split_env.dbaas.admin_user,)]
    assert q("primary", "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") == [(False,)]
    # Foreign keys present and validated, except the cross-database one.
    prim_fks, data_fks = (
        foreign_keys(split_env.connect("primary")),
        foreign_keys(split_env.connect("data")),
    )
    assert prim_fks == {
        "sessions_user_id_fkey": True,
        "users_role_id_fkey": True,
        "accounts_owner_id_fkey": True,
        "accounts_primary_contact_fk": True,
        "contacts_account_id_fkey": True,
    }
    assert data_fks == {"folders_parent_id_fkey": True, "jobs_carrier_code_fkey": True}
    # Indexes, partition index attachments, comments, extensions, materialized views.
    idx = {r[0] for r in q("primary", "SELECT indexname FROM pg_indexes")}
    assert {"users_lower_name_idx", "contacts_phone_uq", "users_email_key"} <= idx
    assert q(
        "data",
        "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent"
        " WHERE c.relname IN ('events_kind_idx', 'events_pkey')",
    ) == [(6,)]
    assert q("primary", "SELECT obj_description('config.roles'::regclass)") == [
        ("Roles and their permissions",)
    ]
    assert {r[0] for r in q("primary", "SELECT extname FROM pg_extension")} >= {"citext"}
    assert q("data", "SELECT sum(n)::int FROM workspace.job_counts") == [(2000,)]
    assert q("data", "SELECT total::int FROM workspace.job_counts_total") == [(2000,)]
    assert q("data", "SELECT count(*) FROM reference.carrier_labels") == [(4,)]
    assert q("data", "SELECT to_regclass('public._prisma_migrations')") == [(None,)]

    report = json.loads(report_path.read_text())
    assert report["ok"] is True
    assert report["verify"]["ok"] is True
    assert report["skipped_foreign_keys"] == [
        {"name": "webhooks_account_fk", "from": "integration.webhooks", "to": "customer.accounts"}
    ]
    tables = {t["table"]: t for t in report["tables"]}
    assert tables["workspace.big"]["rows"] == 30000
    assert tables["workspace.big"]["parts"] > 1
    assert tables["config.users"]["target"] == "primary"
    assert "workspace.events" not in tables  # copied through its leaves only
    assert tables["workspace.events_default"]["rows"] > 0

    # A second run changes nothing.
    before = _state(split_env)
    again = split_env.run(*MIGRATE)
    assert again.returncode == 0, again.stderr
    assert "already complete" in again.stderr
    assert _state(split_env) == before
    assert split_env.run("verify").returncode == 0


def _state(env: SplitEnv) -> object:
    out = []
    for where, schemas in (("primary", PRIMARY_SCHEMAS), ("data", DATA_SCHEMAS)):
        out.append(
            env.query(
                where,
                "SELECT relation, part, rows, done_at FROM _dbsplit.progress ORDER BY 1, 2",
            )
        )
        out.append(
            env.query(
                where,
                "SELECT c.relname, n_tup_ins, n_tup_del FROM pg_stat_user_tables c"
                " WHERE schemaname = ANY(%s) ORDER BY 1",
                (list(schemas),),
            )
        )
    return out


def test_cross_database_fk_blocks_and_nothing_is_written(split_env: SplitEnv) -> None:
    plan = split_env.run("plan")
    assert plan.returncode == 1
    assert "webhooks_account_fk: integration.webhooks -> customer.accounts (BLOCKER)" in plan.stdout
    doc = json.loads(split_env.run("plan", "--json").stdout)
    assert doc["ok"] is False
    assert doc["cross_database_fks"] == [
        {"name": "webhooks_account_fk", "from": "integration.webhooks", "to": "customer.accounts"}
    ]
    assert {t["table"]: t["target"] for t in doc["tables"]}["config.users"] == "primary"
    assert doc["targets"]["data"]["mode"] == "create"
    assert split_env.run("plan", "--drop-cross-db-fks").returncode == 0

    proc = split_env.run("migrate", "--no-verify")
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert err[-1].startswith("dbsplit: error: nothing was written: foreign key")
    assert "--drop-cross-db-fks" in err[-1]
    for where in ("primary", "data"):
        assert split_env.query(
            where,
            "SELECT count(*) FROM pg_namespace WHERE nspname IN"
            " ('_dbsplit', 'config', 'customer', 'workspace')",
        ) == [(0,)]
