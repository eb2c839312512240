"""Routing: which schema goes to which target, and which tables are never copied.

By default schemas ``config`` and ``customer`` go to PRIMARY, every other non-system schema to
DATA, and ``public._prisma_migrations`` is never copied (each database keeps its own).
``--config split.toml`` overrides them::

    [routing]
    primary = ["config", "customer"]      # schemas copied to PRIMARY
    data = []                             # schemas copied to DATA; empty: every other schema
    exclude_schemas = []                  # schemas copied nowhere
    exclude_tables = ["public._prisma_migrations"]

    [resolve]
    drop = []                             # objects left out of their target (see below)

``[resolve] drop`` names views, materialized views, functions and procedures (``schema.name``:
every overload; or one, ``schema.name(integer, text)`` as ``dbsplit plan`` prints it),
triggers (``schema.table.trigger``), collations and text search configurations that dbsplit
leaves out of the target their schema goes to, because they use what the other target holds
(``dbsplit plan`` lists these blockers and the names to write). Each is listed in the plan and
in ``migrate``'s report. A dropped object that the other target needs is still created there
(it moves). Entries are checked against the source: one naming nothing is an error.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from dbsplit.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 on the VPS
    import tomli as tomllib


class Target(str, Enum):
    """Where a schema's objects and rows go."""

    PRIMARY = "primary"
    DATA = "data"


#: Schemas that are never user data.
SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast"})


@dataclass(frozen=True)
class SplitConfig:
    """The routing of schemas to targets (frozen; build it with :func:`load_config`)."""

    primary_schemas: tuple[str, ...] = ("config", "customer")
    data_schemas: tuple[str, ...] = ()
    exclude_schemas: tuple[str, ...] = ()
    exclude_tables: tuple[str, ...] = ("public._prisma_migrations",)
    source_file: str | None = field(default=None, compare=False)
    #: ``[resolve] drop``: objects left out of their target (checked against the source).
    drop: tuple[str, ...] = ()

    def target_of(self, schema: str) -> Target | None:
        """The target of ``schema``, or None when it is not copied."""
        if is_system_schema(schema) or schema in self.exclude_schemas:
            return None
        if schema in self.primary_schemas:
            return Target.PRIMARY
        if not self.data_schemas or schema in self.data_schemas:
            return Target.DATA
        return None

    def is_excluded_table(self, schema: str, table: str) -> bool:
        """True for a table that is never copied (``public._prisma_migrations``)."""
        return f"{schema}.{table}" in self.exclude_tables

    def named_schemas(self) -> tuple[str, ...]:
        """Every schema the configuration names explicitly (checked against the source)."""
        return (*self.primary_schemas, *self.data_schemas, *self.exclude_schemas)


def is_system_schema(schema: str) -> bool:
    """True for PostgreSQL's own schemas (including ``pg_temp_*`` and ``pg_toast_temp_*``)."""
    return schema in SYSTEM_SCHEMAS or schema.startswith(("pg_temp_", "pg_toast_temp_"))


def load_config(path: Path | None) -> SplitConfig:
    """Read ``split.toml`` (or return the defaults when ``path`` is None)."""
    if path is None:
        return SplitConfig()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    routing = raw.get("routing", {})
    unknown = sorted(set(raw) - {"routing", "resolve"}) or sorted(
        set(routing) - {"primary", "data", "exclude_schemas", "exclude_tables"}
    )
    if unknown:
        raise ConfigError(f"config file {str(path)!r}: unknown key {unknown[0]!r}")
    drop = _resolve_drop(raw.get("resolve", {}), path)
    defaults = SplitConfig()
    config = SplitConfig(
        primary_schemas=_names(routing, "primary", defaults.primary_schemas, path),
        data_schemas=_names(routing, "data", defaults.data_schemas, path),
        exclude_schemas=_names(routing, "exclude_schemas", defaults.exclude_schemas, path),
        exclude_tables=_names(routing, "exclude_tables", defaults.exclude_tables, path),
        source_file=str(path),
        drop=drop,
    )
    _check_disjoint(config, path)
    return config


def _names(
    section: dict[str, Any], key: str, default: tuple[str, ...], path: Path
) -> tuple[str, ...]:
    if key not in section:
        return default
    value = section[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(
            f"config file {str(path)!r}: routing.{key} must be a list of names, got {value!r}"
        )
    if key == "exclude_tables":
        bad = [v for v in value if v.count(".") != 1]
        if bad:
            raise ConfigError(
                f"config file {str(path)!r}: exclude_tables entry {bad[0]!r} is not schema.table"
            )
    return tuple(value)


def _resolve_drop(section: Any, path: Path) -> tuple[str, ...]:
    """``[resolve] drop``: a list of ``schema.name`` or ``schema.table.trigger`` entries."""
    if not isinstance(section, dict):
        raise ConfigError(f"config file {str(path)!r}: resolve must be a table, got {section!r}")
    unknown = sorted(set(section) - {"drop"})
    if unknown:
        raise ConfigError(f"config file {str(path)!r}: unknown key {'resolve.' + unknown[0]!r}")
    value = section.get("drop", [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(
            f"config file {str(path)!r}: resolve.drop must be a list of names, got {value!r}"
        )
    for entry in value:
        bare = entry.split("(", 1)[0]
        if not 1 <= bare.count(".") <= 2 or "" in bare.split("."):
            raise ConfigError(
                f"config file {str(path)!r}: resolve.drop entry {entry!r} is not schema.name"
                " or schema.table.trigger"
            )
    return tuple(value)


def _check_disjoint(config: SplitConfig, path: Path) -> None:
    seen: dict[str, str] = {}
    for key, names in (
        ("primary", config.primary_schemas),
        ("data", config.data_schemas),
        ("exclude_schemas", config.exclude_schemas),
    ):
        for name in names:
            if is_system_schema(name):
                raise ConfigError(f"config file {str(path)!r}: {name!r} is a system schema")
            if name in seen and seen[name] != key:
                raise ConfigError(
                    f"config file {str(path)!r}: schema {name!r} is in both {seen[name]} and {key}"
                )
            seen[name] = key
