"""DigitalOcean monitoring alerts, sent by email and, where the stack configures it, to Slack.

- `DatabaseAlerts`: the cluster's CPU, memory, disk utilisation and 15-minute load, each
  `MonitorAlert` scoped to the cluster by its UUID (``v1/dbaas/alerts/*``).
- `DropletAlerts`: the VPS droplet's CPU, memory and disk utilisation, scoped to the droplet by
  its id (``v1/insights/droplet/*``). The droplet holds the app and DATA: a full disk there
  stops both, whatever the cluster does.

Thresholds default to values that leave time to act. A Slack target adds a ``slacks`` entry to
every alert; its webhook URL goes to the provider as a secret (encrypted in the state).

Example::

    DatabaseAlerts("primary-alerts", DatabaseAlertsArgs(
        cluster_id=db.cluster_id, environment="prod", emails=("ops@example.com",)))
    DropletAlerts("vps-alerts", DropletAlertsArgs(
        droplet_id=vps.id, environment="prod", emails=("ops@example.com",),
        slack=SlackTarget("#ops", webhook_url)))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as digitalocean

from infra.config import SlackTarget

#: (resource suffix, DigitalOcean alert type, what it measures), for the cluster
DATABASE_SIGNALS = (
    ("cpu", "v1/dbaas/alerts/cpu_alerts", "CPU utilisation (%)"),
    ("memory", "v1/dbaas/alerts/memory_utilization_alerts", "memory utilisation (%)"),
    ("disk", "v1/dbaas/alerts/disk_utilization_alerts", "disk utilisation (%)"),
    ("load", "v1/dbaas/alerts/load_15_alerts", "15-minute load average"),
)
#: ... and for the droplet
DROPLET_SIGNALS = (
    ("cpu", "v1/insights/droplet/cpu", "CPU utilisation (%)"),
    ("memory", "v1/insights/droplet/memory_utilization_percent", "memory utilisation (%)"),
    ("disk", "v1/insights/droplet/disk_utilization_percent", "disk utilisation (%)"),
)


@dataclass(frozen=True)
class DatabaseAlertsArgs:
    """Which cluster to watch, who hears about it, and when."""

    cluster_id: pulumi.Input[str]
    environment: str
    emails: Sequence[str]
    slack: SlackTarget | None = None
    cpu_percent: float = 80
    memory_percent: float = 85
    disk_percent: float = 80
    load_15: float = 2
    window: str = "10m"


@dataclass(frozen=True)
class DropletAlertsArgs:
    """Which droplet (the VPS) to watch, who hears about it, and when."""

    droplet_id: pulumi.Input[str]
    environment: str
    emails: Sequence[str]
    slack: SlackTarget | None = None
    cpu_percent: float = 85
    memory_percent: float = 85
    disk_percent: float = 80
    window: str = "10m"


def alert_targets(
    emails: Sequence[str], slack: SlackTarget | None
) -> digitalocean.MonitorAlertAlertsArgs:
    """Email, plus Slack when configured (its webhook URL marked secret)."""
    if slack is None:
        return digitalocean.MonitorAlertAlertsArgs(emails=list(emails))
    return digitalocean.MonitorAlertAlertsArgs(
        emails=list(emails),
        slacks=[
            digitalocean.MonitorAlertAlertsSlackArgs(
                channel=slack.channel, url=pulumi.Output.secret(slack.webhook_url)
            )
        ],
    )


def _alerts(
    name: str,
    *,
    what: str,
    entity: pulumi.Input[str],
    signals: Sequence[tuple[str, str, str]],
    thresholds: Mapping[str, float],
    window: str,
    targets: digitalocean.MonitorAlertAlertsArgs,
    opts: pulumi.ResourceOptions,
) -> dict[str, pulumi.Output[str]]:
    """One ``GreaterThan`` `MonitorAlert` per signal on ``entity``; their ids by suffix."""
    ids: dict[str, pulumi.Output[str]] = {}
    for suffix, alert_type, measure in signals:
        alert = digitalocean.MonitorAlert(
            f"{name}-{suffix}",
            type=alert_type,
            description=f"{what}: {measure} above {thresholds[suffix]:g}",
            compare="GreaterThan",
            value=thresholds[suffix],
            window=window,
            entities=[entity],
            enabled=True,
            alerts=targets,
            opts=opts,
        )
        ids[suffix] = alert.id
    return ids


class DatabaseAlerts(pulumi.ComponentResource):
    """Alerts on the cluster's CPU, memory, disk and load."""

    def __init__(
        self, name: str, args: DatabaseAlertsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("handled:infra:DatabaseAlerts", name, {}, opts)
        self.alert_ids = _alerts(
            name,
            what=f"handled {args.environment} PRIMARY",
            entity=args.cluster_id,
            signals=DATABASE_SIGNALS,
            thresholds={
                "cpu": args.cpu_percent,
                "memory": args.memory_percent,
                "disk": args.disk_percent,
                "load": args.load_15,
            },
            window=args.window,
            targets=alert_targets(args.emails, args.slack),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"alert_ids": self.alert_ids})


class DropletAlerts(pulumi.ComponentResource):
    """Alerts on the VPS droplet's CPU, memory and disk."""

    def __init__(
        self, name: str, args: DropletAlertsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("handled:infra:DropletAlerts", name, {}, opts)
        self.alert_ids = _alerts(
            name,
            what=f"handled {args.environment} VPS",
            entity=args.droplet_id,
            signals=DROPLET_SIGNALS,
            thresholds={
                "cpu": args.cpu_percent,
                "memory": args.memory_percent,
                "disk": args.disk_percent,
            },
            window=args.window,
            targets=alert_targets(args.emails, args.slack),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"alert_ids": self.alert_ids})
