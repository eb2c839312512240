"""Bad inputs: one clear line on stderr, the documented exit code, nothing written, no password."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dbsplit.helpers import SplitEnv

WRONG_PASSWORD = "not-The-Password-91"


def _target_snapshot(env: SplitEnv) -> object:
    out = []
    for where in ("primary", "data"):
        out.append(
            env.query(
                where,
                "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%%'"
                " AND nspname <> 'information_schema' ORDER BY 1",
            )
        )
        out.append(env.query(where, "SELECT count(*) FROM pg_class WHERE relnamespace > 16384"))
    return out


def _env_cases(env: SplitEnv, tmp_path: Path) -> dict[str, tuple[dict[str, str], list[str], str]]:
    """case -> (environment changes, extra args, text the error line must contain)."""
    bad_toml = tmp_path / "split.toml"
    bad_toml.write_text('[routing]\nprimary = ["config", "customer", "nosuch"]\n')
    wrong_pw = env.dbaas.direct_url(env.primary, password=WRONG_PASSWORD)
    return {
        "malformed-url": (
            {"DATA_DATABASE_URL": f"postgresql://u:{WRONG_PASSWORD}@localhost:notaport/db"},
            [],
            "malformed DATA URL postgresql://u:***@localhost:notaport/db",
        ),
        "unreachable-host": (
            {"OLD_DATABASE_URL": f"postgresql://u:{WRONG_PASSWORD}@127.0.0.1:1/handled"},
            [],
            "cannot connect to source postgresql://u:***@127.0.0.1:1/handled",
        ),
        "wrong-password": (
            {"PRIMARY_DIRECT_URL": wrong_pw},
            [],
            "cannot connect to PRIMARY postgresql://doadmin:***@",
        ),
        "missing-env": (
            {"DATA_DATABASE_URL": ""},
            [],
            "no DATA database URL: pass --data or set DATA_DATABASE_URL",
        ),
        "pooler": (
            {"PRIMARY_DIRECT_URL": "", "PRIMARY_DATABASE_URL": env.dbaas.pool_url()},
            [],
            "goes through a transaction-mode pooler",
        ),
        "unknown-schema": (
            {},
            ["--config", str(bad_toml)],
            "schema 'nosuch' named in the config does not exist in the source",
        ),
    }


CASES = [
    "malformed-url",
    "unreachable-host",
    "wrong-password",
    "missing-env",
    "pooler",
    "unknown-schema",
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", ["plan", "migrate"])
def test_bad_input_is_one_line_exit_2_nothing_written(
    split_env: SplitEnv, tmp_path: Path, case: str, command: str
) -> None:
    changes, extra, expected = _env_cases(split_env, tmp_path)[case]
    env = split_env.env()
    for name, value in changes.items():
        if value:
            env[name] = value
        else:
            env.pop(name, None)
    before = _target_snapshot(split_env)
    proc = split_env.run(command, *extra, "--drop-cross-db-fks", env=env)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 or (command == "migrate" and len(lines) == 2), lines
    assert lines[-1].startswith("dbsplit: error: ")
    assert expected in lines[-1]
    assert WRONG_PASSWORD not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    if case == "pooler":
        assert ":25060/<database>" in lines[-1] or "direct URL" in lines[-1]
    assert _target_snapshot(split_env) == before


def test_help_documents_exit_codes(split_env: SplitEnv) -> None:
    proc = split_env.run("migrate", "--help")
    assert proc.returncode == 0
    assert "exit codes:" in proc.stdout
    assert "--drop-cross-db-fks" in proc.stdout
