"""`ManagedPostgres`: the PRIMARY cluster, its database, user, pool, firewall, settings and CA.

One component owns everything that must agree about the cluster: the pool sits on the app's
database and user, the single firewall admits only the VPS, and the connection URLs are built from
the cluster's own outputs by `dbsplit.urls`, the one place that knows their shape.

Example::

    db = ManagedPostgres("primary", ManagedPostgresArgs(
        environment="prod", region="nyc3", size="db-s-1vcpu-1gb", version="17",
        db_name="handled", app_user="handled_app", pool_name="handled-pool", pool_size=15,
        trusted_ips=("203.0.113.10",), ca_cert_path="/home/deploy/certs/primary-ca.crt"))
    pulumi.export("primaryDatabaseUrl", db.pool_url)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as digitalocean

from infra.components.trusted_sources import VpsDroplet, vps_firewall_rules


@dataclass(frozen=True)
class ManagedPostgresArgs:
    """What the cluster needs; the defaults are the secure, production choices."""

    environment: str
    region: str
    size: str
    version: str
    db_name: str
    app_user: str
    pool_name: str
    pool_size: int
    ca_cert_path: str
    node_count: int = 1
    pool_mode: str = "transaction"
    trusted_ips: Sequence[str] = ()
    trusted_droplet: VpsDroplet | None = None
    #: Prisma's ``pgbouncer`` parameter in the pool URL (the checklist asks for true).
    prisma_pgbouncer: bool = True
    maintenance_day: str = "sunday"
    maintenance_hour: str = "04:00"
    backup_hour: int = 3
    backup_minute: int = 30
    #: Server-wide default (5 min) that frees pool slots held by abandoned transactions; a
    #: session that must idle longer (the data copy) sets its own.
    idle_in_transaction_session_timeout_ms: int = 300_000
    log_min_duration_statement_ms: int = 1_000
    tags: Sequence[str] = ()
    protect: bool = True


class ManagedPostgres(pulumi.ComponentResource):
    """A DigitalOcean Managed PostgreSQL cluster reachable only from the VPS, through TLS."""

    cluster_id: pulumi.Output[str]
    host: pulumi.Output[str]
    port: pulumi.Output[int]
    pool_host: pulumi.Output[str]
    pool_port: pulumi.Output[int]
    pool_name: pulumi.Output[str]
    ca_certificate: pulumi.Output[str]
    pool_url: pulumi.Output[str]
    direct_url: pulumi.Output[str]

    def __init__(
        self, name: str, args: ManagedPostgresArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("handled:infra:ManagedPostgres", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        kept = pulumi.ResourceOptions(parent=self, protect=args.protect)

        cluster = digitalocean.DatabaseCluster(
            f"{name}-cluster",
            name=f"handled-{name}-{args.environment}",
            engine="pg",
            version=args.version,
            size=args.size,
            region=args.region,
            node_count=args.node_count,
            maintenance_windows=[
                digitalocean.DatabaseClusterMaintenanceWindowArgs(
                    day=args.maintenance_day, hour=args.maintenance_hour
                )
            ],
            tags=list(args.tags),
            opts=kept,
        )
        database = digitalocean.DatabaseDb(
            f"{name}-db", cluster_id=cluster.id, name=args.db_name, opts=kept
        )
        user = digitalocean.DatabaseUser(
            f"{name}-app-user", cluster_id=cluster.id, name=args.app_user, opts=kept
        )
        pool = digitalocean.DatabaseConnectionPool(
            f"{name}-pool",
            cluster_id=cluster.id,
            name=args.pool_name,
            mode=args.pool_mode,
            size=args.pool_size,
            db_name=database.name,
            user=user.name,
            opts=child,
        )
        # Exactly one firewall: each update replaces the whole rule set, and deleting it would
        # open the cluster to the internet, so it is protected like the cluster.
        digitalocean.DatabaseFirewall(
            f"{name}-firewall",
            cluster_id=cluster.id,
            rules=vps_firewall_rules(
                ips=args.trusted_ips, droplet=args.trusted_droplet, region=args.region
            ),
            opts=kept,
        )
        digitalocean.DatabasePostgresqlConfig(
            f"{name}-settings",
            cluster_id=cluster.id,
            backup_hour=args.backup_hour,
            backup_minute=args.backup_minute,
            idle_in_transaction_session_timeout=args.idle_in_transaction_session_timeout_ms,
            log_min_duration_statement=args.log_min_duration_statement_ms,
            opts=child,
        )
        ca = digitalocean.get_database_ca_output(
            cluster_id=cluster.id, opts=pulumi.InvokeOutputOptions(parent=self)
        )

        self.cluster_id = cluster.id
        self.host = cluster.host
        self.port = cluster.port.apply(int)
        self.pool_host = pool.host
        self.pool_port = pool.port.apply(int)
        self.pool_name = pool.name
        self.ca_certificate = ca.certificate
        self.pool_url = pulumi.Output.secret(
            pulumi.Output.all(user.name, user.password, pool.host, pool.name, self.pool_port).apply(
                lambda v: _pool_url(*v, ca_path=args.ca_cert_path, pgbouncer=args.prisma_pgbouncer)
            )
        )
        self.direct_url = pulumi.Output.secret(
            pulumi.Output.all(
                user.name, user.password, cluster.host, database.name, self.port
            ).apply(lambda v: _direct_url(*v, ca_path=args.ca_cert_path))
        )
        self.register_outputs(
            {
                "cluster_id": self.cluster_id,
                "host": self.host,
                "port": self.port,
                "pool_host": self.pool_host,
                "pool_port": self.pool_port,
                "pool_name": self.pool_name,
                "ca_certificate": self.ca_certificate,
                "pool_url": self.pool_url,
                "direct_url": self.direct_url,
            }
        )


def _pool_url(
    user: str, password: str, host: str, pool: str, port: float, *, ca_path: str, pgbouncer: bool
) -> str:
    """The app's URL through the transaction-mode pool (port 25061, the pool as database)."""
    from dbsplit.urls import app_pool_url

    return app_pool_url(
        user=user,
        password=password,
        host=host,
        pool_name=pool,
        ca_path=ca_path,
        pgbouncer=pgbouncer,
        port=int(port),
    )


def _direct_url(user: str, password: str, host: str, db: str, port: float, *, ca_path: str) -> str:
    """The direct URL (port 25060) for migrations and the data copy, which a pool would break."""
    from dbsplit.urls import app_direct_url

    return app_direct_url(
        user=user, password=password, host=host, dbname=db, ca_path=ca_path, port=int(port)
    )
