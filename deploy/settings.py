"""The deploy's settings: non-secret values from the inventory and ``group_data/``, typed once.

Every runbook reads ``Settings.of(host)``; the keys and their defaults are listed in
``group_data/all.py``. Paths on the VPS are absolute or relative to the deploy user's home.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyinfra.api.exceptions import DeployError


def _get(data: Any, key: str) -> Any:
    value = data.get(key)
    if value is None:
        raise DeployError(f"missing setting {key!r}: add it to group_data/ or the inventory")
    return value


@dataclass(frozen=True)
class Settings:
    """What the runbooks need to know about one VPS (never a secret)."""

    environment: str
    app_user: str
    app_dir: str
    env_file: str
    ca_path: str
    ecosystem: str
    pm2_apps: tuple[str, ...]
    health_url: str
    health_timeout: int
    rollback_health_timeout: int
    source_db: str
    data_db: str
    data_role: str
    primary_schemas: tuple[str, ...]
    pool_size: int
    state_dir: str
    backup_dir: str
    backup_name: str
    backup_key_prefix: str
    backup_bucket: str | None
    s3_endpoint: str | None
    s3_region: str
    s3_addressing_style: str
    multipart_chunk_mb: int
    disk_factor: float
    disk_margin_mb: int
    venv: str
    pip_args: tuple[str, ...]
    dbsplit_jobs: int
    dbsplit_migrate_args: tuple[str, ...]
    pnpm_install_args: tuple[str, ...]
    report_dir: str
    secrets_source: str
    pulumi_stack: str | None
    pulumi_cwd: str | None

    @classmethod
    def of(cls, host: Any) -> Settings:
        """Read the settings from ``host.data`` (inventory and group data)."""
        data = host.data
        app_dir = str(_get(data, "app_dir")).rstrip("/")

        def in_app(key: str) -> str:
            value = str(_get(data, key))
            return value if value.startswith(("/", "~")) else f"{app_dir}/{value}"

        return cls(
            environment=str(_get(data, "environment")),
            app_user=str(_get(data, "app_user")),
            app_dir=app_dir,
            env_file=in_app("env_file"),
            ca_path=in_app("ca_path"),
            ecosystem=str(_get(data, "ecosystem")),
            pm2_apps=tuple(_get(data, "pm2_apps")),
            health_url=str(_get(data, "health_url")),
            health_timeout=int(_get(data, "health_timeout")),
            rollback_health_timeout=int(_get(data, "rollback_health_timeout")),
            source_db=str(_get(data, "source_db")),
            data_db=str(_get(data, "data_db")),
            data_role=str(_get(data, "data_role")),
            primary_schemas=tuple(_get(data, "primary_schemas")),
            pool_size=int(_get(data, "pool_size")),
            state_dir=str(_get(data, "state_dir")),
            backup_dir=str(_get(data, "backup_dir")),
            backup_name=str(_get(data, "backup_name")),
            backup_key_prefix=str(_get(data, "backup_key_prefix")).strip("/"),
            backup_bucket=data.get("backup_bucket"),
            s3_endpoint=data.get("s3_endpoint"),
            s3_region=str(_get(data, "s3_region")),
            s3_addressing_style=str(_get(data, "s3_addressing_style")),
            multipart_chunk_mb=int(_get(data, "multipart_chunk_mb")),
            disk_factor=float(_get(data, "disk_factor")),
            disk_margin_mb=int(_get(data, "disk_margin_mb")),
            venv=str(_get(data, "venv")),
            pip_args=tuple(data.get("pip_args") or ()),
            dbsplit_jobs=int(_get(data, "dbsplit_jobs")),
            dbsplit_migrate_args=tuple(data.get("dbsplit_migrate_args") or ()),
            pnpm_install_args=tuple(data.get("pnpm_install_args") or ()),
            report_dir=str(_get(data, "report_dir")),
            secrets_source=str(_get(data, "secrets_source")),
            pulumi_stack=data.get("pulumi_stack"),
            pulumi_cwd=data.get("pulumi_cwd"),
        )

    @property
    def backup_key(self) -> str:
        """The backup's object key in the bucket."""
        return f"{self.backup_key_prefix}/{self.backup_name}"

    @property
    def report_path(self) -> str:
        """Where ``dbsplit migrate`` writes its report on the VPS."""
        return f"{self.state_dir}/dbsplit-migrate-report.json"
