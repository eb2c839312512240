"""The deploy's settings: non-secret values from the inventory and ``group_data/``, typed once.

Every runbook reads ``Settings.of(host)``; the keys and their defaults are listed in
``group_data/all.py``. Paths on the VPS are absolute or relative to the deploy user's home.
What the stack knows (the CA's path on the VPS, the pool's size, Prisma's ``pgbouncer=``, the
backup bucket) is not here: it comes from the stack outputs (:class:`StackValues`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyinfra.api.exceptions import DeployError

from deploy.remote.smoke import SmokeError, parse_checks
from deploy.secrets import StackOutputs


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
    ecosystem: str
    pm2_apps: tuple[str, ...]
    health_url: str
    health_contract: dict[str, Any]
    app_urls: dict[str, str]
    smoke_user: str
    smoke_checks: tuple[dict[str, Any], ...]
    health_timeout: int
    rollback_health_timeout: int
    source_db: str
    data_db: str
    data_role: str
    primary_schemas: tuple[str, ...]
    state_dir: str
    backup_dir: str
    backup_prefix: str
    backup_key_prefix: str
    s3_addressing_style: str
    multipart_chunk_mb: int
    disk_margin_mb: int
    progress_seconds: float
    notify_progress_seconds: float
    venv: str
    pip_args: tuple[str, ...]
    dbsplit_jobs: int
    dbsplit_migrate_args: tuple[str, ...]
    pnpm_install_args: tuple[str, ...]
    report_dir: str
    outputs_source: str
    pulumi_stack: str | None
    pulumi_cwd: str | None
    stack_outputs_file: str | None

    @classmethod
    def of(cls, host: Any) -> Settings:
        """Read the settings from ``host.data`` (inventory and group data)."""
        data = host.data
        app_dir = str(_get(data, "app_dir")).rstrip("/")
        if not app_dir.startswith("/"):
            raise DeployError(f"app_dir must be an absolute path, not {app_dir!r}")
        env_file = str(_get(data, "env_file"))
        app_urls = {str(k): str(v) for k, v in dict(_get(data, "app_urls")).items()}
        checks = list(data.get("smoke_checks") or [])
        try:
            parse_checks(checks, tuple(app_urls))
        except SmokeError as exc:
            raise DeployError(str(exc)) from None
        return cls(
            environment=str(_get(data, "environment")),
            app_user=str(_get(data, "app_user")),
            app_dir=app_dir,
            env_file=env_file if env_file.startswith(("/", "~")) else f"{app_dir}/{env_file}",
            ecosystem=str(_get(data, "ecosystem")),
            pm2_apps=tuple(_get(data, "pm2_apps")),
            health_url=str(_get(data, "health_url")),
            health_contract=dict(_get(data, "health_contract")),
            app_urls=app_urls,
            smoke_user=str(data.get("smoke_user") or ""),
            smoke_checks=tuple(checks),
            health_timeout=int(_get(data, "health_timeout")),
            rollback_health_timeout=int(_get(data, "rollback_health_timeout")),
            source_db=str(_get(data, "source_db")),
            data_db=str(_get(data, "data_db")),
            data_role=str(_get(data, "data_role")),
            primary_schemas=tuple(_get(data, "primary_schemas")),
            state_dir=str(_get(data, "state_dir")),
            backup_dir=str(_get(data, "backup_dir")),
            backup_prefix=str(_get(data, "backup_prefix")),
            backup_key_prefix=str(_get(data, "backup_key_prefix")).strip("/"),
            s3_addressing_style=str(_get(data, "s3_addressing_style")),
            multipart_chunk_mb=int(_get(data, "multipart_chunk_mb")),
            disk_margin_mb=int(_get(data, "disk_margin_mb")),
            progress_seconds=float(_get(data, "progress_seconds")),
            notify_progress_seconds=float(_get(data, "notify_progress_seconds")),
            venv=str(_get(data, "venv")),
            pip_args=tuple(data.get("pip_args") or ()),
            dbsplit_jobs=int(_get(data, "dbsplit_jobs")),
            dbsplit_migrate_args=tuple(data.get("dbsplit_migrate_args") or ()),
            pnpm_install_args=tuple(data.get("pnpm_install_args") or ()),
            report_dir=str(_get(data, "report_dir")),
            outputs_source=str(_get(data, "outputs_source")),
            pulumi_stack=data.get("pulumi_stack"),
            pulumi_cwd=data.get("pulumi_cwd"),
            stack_outputs_file=data.get("stack_outputs_file"),
        )


@dataclass(frozen=True)
class StackValues:
    """What the deploy takes from the stack's outputs (never repeated in ``group_data/``)."""

    ca_path: str
    pool_size: int
    #: Prisma's ``pgbouncer=`` in the app's PRIMARY_DATABASE_URL (``prismaPgbouncer``)
    pgbouncer: bool
    bucket: str
    endpoint: str
    region: str

    @classmethod
    def of(cls, outputs: StackOutputs) -> StackValues:
        endpoint = str(outputs.require("backupBucketEndpoint"))
        if "://" not in endpoint:
            endpoint = f"https://{endpoint}"
        pgbouncer = outputs.require("prismaPgbouncer")
        if not isinstance(pgbouncer, bool):
            raise DeployError(f"stack output 'prismaPgbouncer' is not true or false: {pgbouncer!r}")
        return cls(
            ca_path=str(outputs.require("caCertPath")),
            pool_size=int(outputs.require("poolSize")),
            pgbouncer=pgbouncer,
            bucket=str(outputs.require("backupBucketName")),
            endpoint=endpoint,
            region=str(outputs.require("backupBucketRegion")),
        )
