"""The stack's configuration: read once, validated before anything is created.

`load_config` reads the ``handled-infra:*`` keys of the current stack; `parse_config` turns those
raw strings (Pulumi keeps every config value as text: lists and booleans as JSON) into a frozen
`InfraConfig`, or raises `ConfigError` with one line naming the key and its value, e.g.
``handled-infra:poolSize=23: the pool plus 3 direct connections needs 26, more than the 22 usable
connections of dbSize 'db-s-1vcpu-1gb'``.

Validation rules (the program creates nothing if one fails):

- the pool plus `DIRECT_CONNECTIONS` direct connections fits the plan's connection limit
  (`usable_connections`: 25 per GB of RAM minus 3 reserved, so 22 on 1 GB);
- `vpsIps` holds public IPv4 addresses and is never empty (or `vpsDropletName` is given);
- `pgVersion` is at least 17;
- the maintenance window starts off-peak (`OFF_PEAK_START_HOURS`, UTC);
- `region` equals `vpsRegion`, the VPS's region;
- a Slack target needs both `alertSlackChannel` and `alertSlackWebhookUrl`, the URL an
  ``https://hooks.slack.com/`` webhook set as a secret (``pulumi config set --secret``); its
  value never appears in a message.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi

NAMESPACE = "handled-infra"

#: Connections kept free beside the pool: migrations and the data copy use the direct port.
DIRECT_CONNECTIONS = 3
#: DigitalOcean allows 25 backend connections per GB of RAM and reserves 3 for maintenance.
CONNECTIONS_PER_GB = 25
RESERVED_CONNECTIONS = 3
#: Maintenance may start any time in the 4 hours after the window opens: opening between 02:00
#: and 06:00 UTC keeps it between 22:00 and 06:00 in New York (EDT), the back office's night.
OFF_PEAK_START_HOURS = range(2, 7)
MIN_PG_VERSION = 17
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
POOL_MODES = ("transaction", "session", "statement")
DEFAULT_CA_CERT_PATH = "/home/deploy/handled/apps/backoffice/api/certs/primary-ca.crt"
#: Keys whose value is a secret: set with ``pulumi config set --secret``, never shown.
SECRET_KEYS = frozenset({"alertSlackWebhookUrl"})
SLACK_WEBHOOK_PREFIX = "https://hooks.slack.com/"

#: Every key the program reads, with its default (None: the key is required).
KEYS: Mapping[str, str | None] = {
    "region": "nyc3",
    "vpsRegion": "nyc3",
    "dbSize": "db-s-1vcpu-1gb",
    "dbNodeCount": "1",
    "pgVersion": "17",
    "dbName": "handled",
    "appUser": "handled_app",
    "poolName": "handled-pool",
    "poolSize": "15",
    "poolMode": "transaction",
    "vpsIps": "[]",
    "vpsDropletName": "",
    "maintenanceDay": "sunday",
    "maintenanceHour": "04:00",
    "backupHour": "3",
    "backupMinute": "30",
    "alertEmails": None,
    "alertSlackChannel": "",
    "alertSlackWebhookUrl": "",
    "backupBucket": None,
    "backupRetentionDays": "30",
    "caCertPath": DEFAULT_CA_CERT_PATH,
    "prismaPgbouncer": "true",
    "protect": "true",
    "notifySlackWebhook": "",
    "notifyEmails": "[]",
    "notifySmtpUrl": "",
    "notifyFrom": "",
}

_SIZE_RE = re.compile(r"^db-s-(?P<vcpu>\d+)vcpu-(?P<gb>\d+)gb$")
_HOUR_RE = re.compile(r"^(?P<hour>\d{1,2}):00(:00)?$")
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_POOL_RE = re.compile(r"^[A-Za-z0-9_-]{3,60}$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CHANNEL_RE = re.compile(r"^#?[a-z0-9][a-z0-9._-]{0,79}$")


class ConfigError(ValueError):
    """A stack config value is missing or invalid; the message names the key and the value."""

    def __init__(self, key: str, value: object, reason: str) -> None:
        self.key = key
        self.value = "[secret]" if key in SECRET_KEYS else value
        super().__init__(f"{NAMESPACE}:{key}={self.value!r}: {reason}")


@dataclass(frozen=True)
class SlackTarget:
    """Where DigitalOcean posts alerts in Slack; ``webhook_url`` is a secret (never shown)."""

    channel: str
    webhook_url: str = field(repr=False)


@dataclass(frozen=True)
class Notify:
    """Where the deploy's notifier posts (the communication plan); the URLs are secrets."""

    slack_webhook: str = field(default="", repr=False)
    emails: tuple[str, ...] = ()
    smtp_url: str = field(default="", repr=False)
    sender: str = ""


@dataclass(frozen=True)
class InfraConfig:
    """One stack's validated configuration."""

    stack: str
    region: str
    vps_region: str
    db_size: str
    db_node_count: int
    pg_version: str
    db_name: str
    app_user: str
    pool_name: str
    pool_size: int
    pool_mode: str
    vps_ips: tuple[str, ...]
    vps_droplet_name: str | None
    maintenance_day: str
    maintenance_hour: str
    backup_hour: int
    backup_minute: int
    alert_emails: tuple[str, ...]
    alert_slack: SlackTarget | None
    backup_bucket: str
    backup_retention_days: int
    ca_cert_path: str
    #: Prisma's ``pgbouncer`` parameter in ``primaryDatabaseUrl`` (true: the checklist's value).
    prisma_pgbouncer: bool
    protect: bool
    notify: Notify

    @property
    def tags(self) -> tuple[str, ...]:
        """DigitalOcean tags naming the project, the environment and the role."""
        return ("handled", f"env:{self.stack}", "role:primary")


def usable_connections(db_size: str) -> int:
    """Backend connections a ``db-s-<n>vcpu-<m>gb`` plan offers: 25 per GB minus 3 reserved.

    >>> usable_connections("db-s-1vcpu-1gb")
    22
    """
    match = _SIZE_RE.match(db_size)
    if match is None:
        raise ConfigError("dbSize", db_size, "expected a DigitalOcean slug like 'db-s-1vcpu-1gb'")
    return CONNECTIONS_PER_GB * int(match["gb"]) - RESERVED_CONNECTIONS


def load_config() -> InfraConfig:
    """Read and validate the current stack's ``handled-infra:*`` config."""
    config = pulumi.Config(NAMESPACE)
    raw = {key: value for key in KEYS if (value := config.get(key)) is not None}
    secret = {key for key in raw if pulumi.runtime.is_config_secret(config.full_key(key))}
    return parse_config(raw, stack=pulumi.get_stack(), secret_keys=frozenset(secret))


def parse_config(
    raw: Mapping[str, str], *, stack: str, secret_keys: frozenset[str] = frozenset()
) -> InfraConfig:
    """Turn raw config strings into an `InfraConfig`; raise `ConfigError` on the first bad key.

    `secret_keys` are the keys the stack holds encrypted: a `SECRET_KEYS` key must be one.
    """
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ConfigError(unknown[0], raw[unknown[0]], f"unknown key; known keys: {sorted(KEYS)}")
    for key in sorted((SECRET_KEYS & set(raw)) - secret_keys):
        if raw[key]:
            raise ConfigError(key, raw[key], "must be set with `pulumi config set --secret`")
    values = {key: raw.get(key, default) for key, default in KEYS.items()}
    for key, value in values.items():
        if value is None:
            raise ConfigError(key, None, "required key is not set")
    text = {key: str(value) for key, value in values.items()}

    config = InfraConfig(
        stack=stack,
        region=text["region"],
        vps_region=text["vpsRegion"],
        db_size=text["dbSize"],
        db_node_count=_int(text, "dbNodeCount", low=1, high=3),
        pg_version=text["pgVersion"],
        db_name=_identifier(text, "dbName"),
        app_user=_identifier(text, "appUser"),
        pool_name=_matching(text, "poolName", _POOL_RE, "3-60 letters, digits, '-' or '_'"),
        pool_size=_int(text, "poolSize", low=1, high=10_000),
        pool_mode=_choice(text, "poolMode", POOL_MODES),
        vps_ips=_ips(text),
        vps_droplet_name=text["vpsDropletName"] or None,
        maintenance_day=_choice(text, "maintenanceDay", DAYS),
        maintenance_hour=_maintenance_hour(text),
        backup_hour=_int(text, "backupHour", low=0, high=23),
        backup_minute=_int(text, "backupMinute", low=0, high=59),
        alert_emails=_emails(text),
        alert_slack=_slack(text),
        backup_bucket=_matching(
            text, "backupBucket", _BUCKET_RE, "3-63 lower-case letters, digits, '-'"
        ),
        backup_retention_days=_int(text, "backupRetentionDays", low=1, high=3650),
        ca_cert_path=_absolute_path(text, "caCertPath"),
        prisma_pgbouncer=_bool(text, "prismaPgbouncer"),
        protect=_bool(text, "protect"),
        notify=_notify(text),
    )
    _check_cross_keys(config)
    return config


def _check_cross_keys(config: InfraConfig) -> None:
    """Rules that relate two keys, or a key to the provider's facts."""
    if config.region != config.vps_region:
        raise ConfigError(
            "region", config.region, f"must equal vpsRegion {config.vps_region!r}, the VPS's region"
        )
    version = config.pg_version
    if not version.isdigit() or int(version) < MIN_PG_VERSION:
        raise ConfigError("pgVersion", version, f"must be a major version >= {MIN_PG_VERSION}")
    usable = usable_connections(config.db_size)
    needed = config.pool_size + DIRECT_CONNECTIONS
    if needed > usable:
        raise ConfigError(
            "poolSize",
            config.pool_size,
            f"the pool plus {DIRECT_CONNECTIONS} direct connections needs {needed}, more than the"
            f" {usable} usable connections of dbSize {config.db_size!r}",
        )
    if not config.vps_ips and config.vps_droplet_name is None:
        raise ConfigError(
            "vpsIps", [], "must list the VPS's public IPv4 addresses when vpsDropletName is unset"
        )


def _int(text: Mapping[str, str], key: str, *, low: int, high: int) -> int:
    try:
        number = int(text[key])
    except ValueError:
        raise ConfigError(key, text[key], "expected an integer") from None
    if not low <= number <= high:
        raise ConfigError(key, number, f"expected {low}..{high}")
    return number


def _bool(text: Mapping[str, str], key: str) -> bool:
    value = text[key].lower()
    if value not in ("true", "false"):
        raise ConfigError(key, text[key], "expected true or false")
    return value == "true"


def _choice(text: Mapping[str, str], key: str, choices: Sequence[str]) -> str:
    if text[key] not in choices:
        raise ConfigError(key, text[key], f"expected one of {list(choices)}")
    return text[key]


def _matching(text: Mapping[str, str], key: str, pattern: re.Pattern[str], what: str) -> str:
    if pattern.match(text[key]) is None:
        raise ConfigError(key, text[key], f"expected {what}")
    return text[key]


def _identifier(text: Mapping[str, str], key: str) -> str:
    return _matching(text, key, _NAME_RE, "a lower-case PostgreSQL identifier")


def _absolute_path(text: Mapping[str, str], key: str) -> str:
    if not text[key].startswith("/"):
        raise ConfigError(key, text[key], "expected an absolute path on the VPS")
    return text[key]


def _string_list(text: Mapping[str, str], key: str) -> list[str]:
    try:
        value = json.loads(text[key])
    except json.JSONDecodeError:
        raise ConfigError(key, text[key], "expected a list of strings") from None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(key, value, "expected a list of strings")
    return value


def _ips(text: Mapping[str, str]) -> tuple[str, ...]:
    ips = _string_list(text, "vpsIps")
    for ip in ips:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            raise ConfigError("vpsIps", ip, "not an IPv4 address") from None
        if address.version != 4:
            raise ConfigError("vpsIps", ip, "not an IPv4 address (trusted sources take no IPv6)")
        if not address.is_global:
            raise ConfigError("vpsIps", ip, "not a public IPv4 address")
    return tuple(ips)


def _emails(text: Mapping[str, str]) -> tuple[str, ...]:
    emails = _string_list(text, "alertEmails")
    if not emails:
        raise ConfigError("alertEmails", emails, "at least one address must receive the alerts")
    for email in emails:
        if _EMAIL_RE.match(email) is None:
            raise ConfigError("alertEmails", email, "not an email address")
    return tuple(emails)


def _slack(text: Mapping[str, str]) -> SlackTarget | None:
    channel, url = text["alertSlackChannel"], text["alertSlackWebhookUrl"]
    if not channel and not url:
        return None
    if not url:
        raise ConfigError("alertSlackWebhookUrl", "", "required with alertSlackChannel")
    if not channel:
        raise ConfigError("alertSlackChannel", "", "required with alertSlackWebhookUrl")
    if _CHANNEL_RE.match(channel) is None:
        raise ConfigError("alertSlackChannel", channel, "expected a Slack channel like '#ops'")
    if not url.startswith(SLACK_WEBHOOK_PREFIX) or any(c.isspace() for c in url):
        raise ConfigError(
            "alertSlackWebhookUrl", url, f"expected a Slack webhook {SLACK_WEBHOOK_PREFIX}..."
        )
    return SlackTarget(channel=channel, webhook_url=url)


def _notify(text: Mapping[str, str]) -> Notify:
    webhook, smtp = text["notifySlackWebhook"], text["notifySmtpUrl"]
    if webhook and not webhook.startswith("https://"):
        raise ConfigError("notifySlackWebhook", "***", "expected an https:// webhook URL")
    if smtp and not smtp.startswith(("smtp://", "smtps://")):
        raise ConfigError(
            "notifySmtpUrl", "***", "expected smtp://user:password@host:587 or smtps://"
        )
    emails = _string_list(text, "notifyEmails")
    for email in emails:
        if _EMAIL_RE.match(email) is None:
            raise ConfigError("notifyEmails", email, "not an email address")
    if emails and not smtp:
        raise ConfigError("notifyEmails", emails, "needs notifySmtpUrl, the server that sends them")
    sender = text["notifyFrom"]
    if sender and _EMAIL_RE.match(sender) is None:
        raise ConfigError("notifyFrom", sender, "not an email address")
    return Notify(webhook, tuple(emails), smtp, sender)


def _maintenance_hour(text: Mapping[str, str]) -> str:
    match = _HOUR_RE.match(text["maintenanceHour"])
    if match is None:
        raise ConfigError("maintenanceHour", text["maintenanceHour"], "expected 'HH:00' (UTC)")
    hour = int(match["hour"])
    if hour not in OFF_PEAK_START_HOURS:
        first, last = OFF_PEAK_START_HOURS[0], OFF_PEAK_START_HOURS[-1]
        raise ConfigError(
            "maintenanceHour",
            text["maintenanceHour"],
            f"not off-peak: the window must open between {first:02d}:00 and {last:02d}:00 UTC",
        )
    return f"{hour:02d}:00"
