"""`DatabaseAlerts`: DigitalOcean monitoring alerts on the cluster, sent by email.

One `MonitorAlert` per signal (CPU, memory, disk utilisation and 15-minute load), each scoped to
the cluster by its UUID. Thresholds default to values that leave time to act on a 1 GB plan.

Example::

    DatabaseAlerts("primary-alerts", DatabaseAlertsArgs(
        cluster_id=db.cluster_id, environment="prod", emails=("ops@example.com",)))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as digitalocean


@dataclass(frozen=True)
class DatabaseAlertsArgs:
    """Which cluster to watch, who hears about it, and when."""

    cluster_id: pulumi.Input[str]
    environment: str
    emails: Sequence[str]
    cpu_percent: float = 80
    memory_percent: float = 85
    disk_percent: float = 80
    load_15: float = 2
    window: str = "10m"


#: (resource suffix, DigitalOcean alert type, what it measures)
SIGNALS = (
    ("cpu", "v1/dbaas/alerts/cpu_alerts", "CPU utilisation (%)"),
    ("memory", "v1/dbaas/alerts/memory_utilization_alerts", "memory utilisation (%)"),
    ("disk", "v1/dbaas/alerts/disk_utilization_alerts", "disk utilisation (%)"),
    ("load", "v1/dbaas/alerts/load_15_alerts", "15-minute load average"),
)


class DatabaseAlerts(pulumi.ComponentResource):
    """Email alerts on the cluster's CPU, memory, disk and load."""

    def __init__(
        self, name: str, args: DatabaseAlertsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("handled:infra:DatabaseAlerts", name, {}, opts)
        thresholds = {
            "cpu": args.cpu_percent,
            "memory": args.memory_percent,
            "disk": args.disk_percent,
            "load": args.load_15,
        }
        self.alert_ids: dict[str, pulumi.Output[str]] = {}
        for suffix, alert_type, measure in SIGNALS:
            alert = digitalocean.MonitorAlert(
                f"{name}-{suffix}",
                type=alert_type,
                description=f"handled {args.environment} PRIMARY: {measure} above"
                f" {thresholds[suffix]:g}",
                compare="GreaterThan",
                value=thresholds[suffix],
                window=args.window,
                entities=[args.cluster_id],
                enabled=True,
                alerts=digitalocean.MonitorAlertAlertsArgs(emails=list(args.emails)),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.alert_ids[suffix] = alert.id
        self.register_outputs({"alert_ids": self.alert_ids})
