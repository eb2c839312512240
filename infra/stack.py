"""Build the stack from its config: the components, wired together, and the stack outputs.

`build` is what ``infra/__main__.py`` runs and what the tests run under mocks; it returns the
outputs (secrets already marked secret) instead of exporting them, so both can inspect them.
"""

from __future__ import annotations

from typing import Any

import pulumi

from infra.components.alerts import (
    DatabaseAlerts,
    DatabaseAlertsArgs,
    DropletAlerts,
    DropletAlertsArgs,
)
from infra.components.backups import BackupBucket, BackupBucketArgs
from infra.components.postgres import ManagedPostgres, ManagedPostgresArgs
from infra.components.secrets import AppSecrets, AppSecretsArgs
from infra.components.trusted_sources import find_droplet
from infra.config import InfraConfig


def build(config: InfraConfig) -> dict[str, pulumi.Output[Any]]:
    """Create PRIMARY, its and the VPS's alerts, the backup bucket and the app's secrets; return
    the outputs."""
    droplet = find_droplet(config.vps_droplet_name) if config.vps_droplet_name else None
    primary = ManagedPostgres(
        "primary",
        ManagedPostgresArgs(
            environment=config.stack,
            region=config.region,
            size=config.db_size,
            node_count=config.db_node_count,
            version=config.pg_version,
            db_name=config.db_name,
            app_user=config.app_user,
            pool_name=config.pool_name,
            pool_size=config.pool_size,
            pool_mode=config.pool_mode,
            trusted_ips=config.vps_ips,
            trusted_droplet=droplet,
            maintenance_day=config.maintenance_day,
            maintenance_hour=config.maintenance_hour,
            backup_hour=config.backup_hour,
            backup_minute=config.backup_minute,
            ca_cert_path=config.ca_cert_path,
            tags=config.tags,
            prisma_pgbouncer=config.prisma_pgbouncer,
            protect=config.protect,
        ),
    )
    DatabaseAlerts(
        "primary-alerts",
        DatabaseAlertsArgs(
            cluster_id=primary.cluster_id,
            environment=config.stack,
            emails=config.alert_emails,
            slack=config.alert_slack,
        ),
    )
    if droplet is None:
        pulumi.log.warn("no VPS alerts: name the droplet (vpsDropletName) to have them")
    else:
        DropletAlerts(
            "vps-alerts",
            DropletAlertsArgs(
                droplet_id=droplet.id,
                environment=config.stack,
                emails=config.alert_emails,
                slack=config.alert_slack,
            ),
        )
    backups = BackupBucket(
        "pg-dumps",
        BackupBucketArgs(
            name=config.backup_bucket,
            region=config.region,
            retention_days=config.backup_retention_days,
            protect=config.protect,
        ),
    )
    secrets = AppSecrets("app", AppSecretsArgs())
    return {
        "clusterId": primary.cluster_id,
        "host": primary.host,
        "port": primary.port,
        "poolHost": primary.pool_host,
        "poolPort": primary.pool_port,
        "poolName": primary.pool_name,
        "poolSize": pulumi.Output.from_input(config.pool_size),
        "caCertificate": primary.ca_certificate,
        "caCertPath": pulumi.Output.from_input(config.ca_cert_path),
        "prismaPgbouncer": pulumi.Output.from_input(config.prisma_pgbouncer),
        "primaryDatabaseUrl": primary.pool_url,
        "primaryDirectUrl": primary.direct_url,
        "backupBucketName": backups.bucket_name,
        "backupBucketEndpoint": backups.endpoint,
        "backupBucketRegion": pulumi.Output.from_input(config.region),
        "authSecret": secrets.auth_secret,
        "notifySlackWebhook": pulumi.Output.secret(config.notify.slack_webhook),
        "notifySmtpUrl": pulumi.Output.secret(config.notify.smtp_url),
        "notifyEmails": pulumi.Output.from_input(list(config.notify.emails)),
        "notifyFrom": pulumi.Output.from_input(config.notify.sender),
    }
