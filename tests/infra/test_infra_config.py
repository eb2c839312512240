"""Each validation rule: a bad value stops the program with one line naming the key and value."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from infra.config import ConfigError, InfraConfig, parse_config, usable_connections
from tests.infra.harness import ProgramRun, run_program, stack_config


def parse(
    changes: Mapping[str, str] | None = None, *, stack: str = "prod", remove: tuple[str, ...] = ()
) -> InfraConfig:
    """Parse the stack's file with some raw values changed or removed."""
    raw = stack_config(stack) | dict(changes or {})
    for key in remove:
        raw.pop(key)
    return parse_config(raw, stack=stack)


def test_both_stack_files_are_valid() -> None:
    prod, staging = parse(stack="prod"), parse(stack="staging")
    assert (prod.pool_size, prod.protect, prod.region) == (15, True, "nyc3")
    assert (staging.protect, staging.region) == (False, "nyc3")


def test_usable_connections_follow_the_plan_ram() -> None:
    assert usable_connections("db-s-1vcpu-1gb") == 22
    assert usable_connections("db-s-2vcpu-4gb") == 97


@pytest.mark.parametrize(
    ("changes", "key", "value", "reason"),
    [
        # connection limit: 22 usable on 1 GB, 3 kept for direct connections
        ({"poolSize": "20"}, "poolSize", 20, "needs 23, more than the 22 usable"),
        ({"poolSize": "22"}, "poolSize", 22, "needs 25, more than the 22 usable"),
        ({"dbSize": "db-s-1vcpu-1gb-huge"}, "dbSize", "db-s-1vcpu-1gb-huge", "expected a"),
        # VPS addresses
        ({"vpsIps": '["10.0.0.5"]'}, "vpsIps", "10.0.0.5", "not a public IPv4"),
        ({"vpsIps": '["0.0.0.0"]'}, "vpsIps", "0.0.0.0", "not a public IPv4"),  # noqa: S104
        ({"vpsIps": '["0.0.0.0/0"]'}, "vpsIps", "0.0.0.0/0", "not an IPv4 address"),
        ({"vpsIps": '["2604:a880:800::1"]'}, "vpsIps", "2604:a880:800::1", "not an IPv4"),
        ({"vpsIps": '"159.203.1.2"'}, "vpsIps", "159.203.1.2", "expected a list"),
        ({"vpsIps": "[]", "vpsDropletName": ""}, "vpsIps", [], "must list the VPS's public"),
        # PostgreSQL version
        ({"pgVersion": "16"}, "pgVersion", "16", "must be a major version >= 17"),
        ({"pgVersion": "latest"}, "pgVersion", "latest", "must be a major version >= 17"),
        # maintenance window off-peak
        ({"maintenanceHour": "14:00"}, "maintenanceHour", "14:00", "not off-peak"),
        ({"maintenanceHour": "00:00"}, "maintenanceHour", "00:00", "not off-peak"),
        ({"maintenanceHour": "04:30"}, "maintenanceHour", "04:30", "expected 'HH:00'"),
        ({"maintenanceDay": "someday"}, "maintenanceDay", "someday", "expected one of"),
        # region equals the VPS's
        ({"region": "sfo3"}, "region", "sfo3", "must equal vpsRegion 'nyc3'"),
        ({"vpsRegion": "ams3"}, "region", "nyc3", "must equal vpsRegion 'ams3'"),
        # the rest of the keys
        ({"poolMode": "transactional"}, "poolMode", "transactional", "expected one of"),
        ({"poolName": "p"}, "poolName", "p", "3-60 letters"),
        ({"dbNodeCount": "4"}, "dbNodeCount", 4, "expected 1..3"),
        ({"backupHour": "24"}, "backupHour", 24, "expected 0..23"),
        ({"backupMinute": "x"}, "backupMinute", "x", "expected an integer"),
        ({"alertEmails": "[]"}, "alertEmails", [], "at least one address"),
        ({"alertEmails": '["ops"]'}, "alertEmails", "ops", "not an email address"),
        ({"backupBucket": "Bad_Bucket"}, "backupBucket", "Bad_Bucket", "lower-case"),
        ({"backupRetentionDays": "0"}, "backupRetentionDays", 0, "expected 1..3650"),
        ({"caCertPath": "certs/ca.crt"}, "caCertPath", "certs/ca.crt", "absolute path"),
        ({"protect": "yes"}, "protect", "yes", "expected true or false"),
        ({"prismaPgbouncer": "on"}, "prismaPgbouncer", "on", "expected true or false"),
        ({"alertSlackChannel": "#ops"}, "alertSlackWebhookUrl", "[secret]", "required with"),
        ({"appUser": "Handled-App"}, "appUser", "Handled-App", "PostgreSQL identifier"),
        ({"regoin": "nyc3"}, "regoin", "nyc3", "unknown key"),
        # the notifier: a secret URL is never echoed
        ({"notifySlackWebhook": "http://hooks.x/T/B/tok"}, "notifySlackWebhook", "***", "https"),
        ({"notifySmtpUrl": "mail://u:pw@x"}, "notifySmtpUrl", "***", "smtp://"),
        ({"notifyEmails": '["ops@x.io"]'}, "notifyEmails", ["ops@x.io"], "needs notifySmtpUrl"),
        ({"notifyFrom": "deploy"}, "notifyFrom", "deploy", "not an email address"),
    ],
)
def test_a_bad_value_is_rejected_naming_key_and_value(
    changes: dict[str, str], key: str, value: object, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(changes)
    message = str(caught.value)
    assert (caught.value.key, caught.value.value) == (key, value), message
    assert message.startswith(f"handled-infra:{key}={value!r}: "), message
    assert reason in message, message
    assert "\n" not in message


def test_pool_plus_direct_connections_may_use_every_usable_connection() -> None:
    assert parse({"poolSize": "19"}).pool_size == 19
    assert parse({"dbSize": "db-s-2vcpu-4gb", "poolSize": "94"}).pool_size == 94


def test_vps_needs_addresses_or_a_droplet_name() -> None:
    with pytest.raises(ConfigError, match=r"^handled-infra:vpsIps=\[\]: must list the VPS's"):
        parse(remove=("vpsDropletName",))
    assert parse({"vpsIps": "[]"}).vps_droplet_name == "handled-vps"
    only_ips = parse({"vpsIps": json.dumps(["159.203.1.2"])}, remove=("vpsDropletName",))
    assert (only_ips.vps_ips, only_ips.vps_droplet_name) == (("159.203.1.2",), None)


def test_a_required_key_must_be_set() -> None:
    with pytest.raises(ConfigError, match=r"^handled-infra:alertEmails=None: required key"):
        parse(remove=("alertEmails",))


def test_the_notifier_is_configured_per_stack() -> None:
    assert parse().notify.slack_webhook == ""
    notify = parse(
        {
            "notifySlackWebhook": "https://hooks.slack.com/services/T0/B0/tok",
            "notifyEmails": '["ops@handledcommerce.com"]',
            "notifySmtpUrl": "smtps://mailer:pw@smtp.example.com",
        }
    ).notify
    assert notify.emails == ("ops@handledcommerce.com",)
    assert "tok" not in repr(notify)
    assert "pw" not in repr(notify)


def test_maintenance_hour_is_normalised() -> None:
    assert parse({"maintenanceHour": "4:00"}).maintenance_hour == "04:00"


def test_the_program_stops_before_creating_anything() -> None:
    run = ProgramRun(stack="prod")
    with pytest.raises(ConfigError, match=r"^handled-infra:poolSize=23: "):
        run_program("prod", overrides={"poolSize": "23"}, run=run)
    assert run.resources == []
    assert run.calls == []


def test_a_slack_target_needs_both_keys_and_a_secret_webhook() -> None:
    url = "https://hooks.slack.com/services/T1/B2/tok3n"
    secret = frozenset({"alertSlackWebhookUrl"})
    raw = stack_config("prod") | {"alertSlackChannel": "#ops", "alertSlackWebhookUrl": url}
    slack = parse_config(raw, stack="prod", secret_keys=secret).alert_slack
    assert slack is not None
    assert (slack.channel, slack.webhook_url) == ("#ops", url)
    assert url not in repr(slack)
    assert parse().alert_slack is None
    bad = [
        ({"alertSlackWebhookUrl": url}, "alertSlackChannel", "required with"),
        (
            {"alertSlackChannel": "ops room", "alertSlackWebhookUrl": url},
            "alertSlackChannel='ops room'",
            "expected a Slack channel",
        ),
        ({"alertSlackChannel": "#ops", "alertSlackWebhookUrl": "http://x/tok3n"}, "", "expected"),
    ]
    for changes, key, reason in bad:
        with pytest.raises(ConfigError) as caught:
            parse_config(stack_config("prod") | changes, stack="prod", secret_keys=secret)
        assert reason in str(caught.value)
        assert key in str(caught.value)
        assert "tok3n" not in str(caught.value)
