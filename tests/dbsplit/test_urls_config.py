"""The lead's URL and config modules, as dbsplit relies on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbsplit.config import SplitConfig, Target, load_config
from dbsplit.errors import ConfigError, UsageError
from dbsplit.urls import parse, redact


def test_prisma_url_becomes_libpq_params() -> None:
    url = parse(
        "postgresql://app:p%40ss@db.example.com:25061/pool?sslmode=require&sslcert=/ca.crt"
        "&pgbouncer=true&connection_limit=5&schema=public&statement_cache_size=0"
    )
    assert url.is_transaction_pooler
    params = url.libpq_params()
    assert params["sslrootcert"] == "/ca.crt"
    assert "sslcert" not in params
    assert "pgbouncer" not in params
    assert "schema" not in params
    assert params["password"] == "p@ss"
    assert "p@ss" not in url.redacted()
    assert "p@ss" not in repr(url)
    assert redact("password=hunter2 host=x") == "password=*** host=x"


@pytest.mark.parametrize(
    "text",
    ["", "mysql://h/db", "postgresql://u:pw@h:99999/db", "postgresql://h/a/b"],
)
def test_malformed_urls(text: str) -> None:
    with pytest.raises(UsageError):
        parse(text)


def test_default_routing() -> None:
    config = SplitConfig()
    assert config.target_of("config") is Target.PRIMARY
    assert config.target_of("customer") is Target.PRIMARY
    assert config.target_of("workspace") is Target.DATA
    assert config.target_of("pg_catalog") is None
    assert config.is_excluded_table("public", "_prisma_migrations")


def test_load_config(tmp_path: Path) -> None:
    path = tmp_path / "split.toml"
    path.write_text('[routing]\nprimary = ["config"]\nexclude_schemas = ["scratch"]\n')
    config = load_config(path)
    assert config.primary_schemas == ("config",)
    assert config.target_of("customer") is Target.DATA
    assert config.target_of("scratch") is None
    path.write_text('[routing]\nprimary = ["config"]\ndata = ["config"]\n')
    with pytest.raises(ConfigError, match="in both primary and data"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
