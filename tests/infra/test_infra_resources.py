"""The resources the real program registers, per stack, with the config of ``Pulumi.<stack>.yaml``.

Mock inputs arrive camelCase with integers as floats, so numbers are compared with ``==``.
"""

from __future__ import annotations

import ipaddress
import json
import re

import pytest

from infra.config import ConfigError
from tests.infra.harness import (
    ALERT,
    BUCKET,
    CA_PEM,
    CLUSTER,
    DATABASE,
    DROPLET_ID,
    DROPLET_IP,
    FIREWALL,
    GET_CA,
    GET_DROPLET,
    PASSWORD,
    PG_CONFIG,
    POOL,
    USER,
    ProgramRun,
    Recorded,
    run_program,
    stack_config,
)
from tests.infra.schema_check import SchemaChecker

COMPONENT_PREFIX = "handled:infra:"
WEBHOOK = "https://hooks.slack.com/services/T0001/B0002/s3cr3tWebh00kT0ken"
DATABASE_ALERTS = {
    "v1/dbaas/alerts/cpu_alerts",
    "v1/dbaas/alerts/memory_utilization_alerts",
    "v1/dbaas/alerts/disk_utilization_alerts",
    "v1/dbaas/alerts/load_15_alerts",
}
DROPLET_ALERTS = {
    "v1/insights/droplet/cpu",
    "v1/insights/droplet/memory_utilization_percent",
    "v1/insights/droplet/disk_utilization_percent",
}


def test_every_input_matches_the_provider_schema(
    stack_run: ProgramRun, schema: SchemaChecker
) -> None:
    custom = [r for r in stack_run.resources if r.custom and r.type.startswith("digitalocean:")]
    assert len(custom) == 14, [r.type for r in custom]
    problems = [p for r in custom for p in schema.problems(r.type, r.inputs)]
    assert problems == [], f"{stack_run.stack}: {problems}"


def test_only_known_resource_types_are_created(stack_run: ProgramRun) -> None:
    types = {r.type for r in stack_run.resources if r.custom}
    assert types == {CLUSTER, DATABASE, USER, POOL, FIREWALL, PG_CONFIG, ALERT, BUCKET, PASSWORD}


def test_every_resource_is_parented_to_a_component(stack_run: ProgramRun) -> None:
    components = {r.urn: r for r in stack_run.resources if not r.custom}
    assert {r.type for r in components.values()} == {
        "handled:infra:ManagedPostgres",
        "handled:infra:DatabaseAlerts",
        "handled:infra:DropletAlerts",
        "handled:infra:BackupBucket",
        "handled:infra:AppSecrets",
    }
    for resource in stack_run.resources:
        if resource.custom:
            parent = components.get(resource.parent)
            assert parent is not None, (
                f"{resource.name} ({resource.type}) has parent {resource.parent!r}"
            )
            assert parent.type.startswith(COMPONENT_PREFIX), resource.name
        else:
            assert resource.parent.endswith("pulumi:pulumi:Stack::handled-infra-" + stack_run.stack)


def test_cluster_is_pg_with_the_configured_version_size_region_nodes_window_tags(
    stack_run: ProgramRun,
) -> None:
    config = stack_config(stack_run.stack)
    cluster = stack_run.one(CLUSTER).inputs
    assert cluster["engine"] == "pg"
    assert cluster["version"] == config["pgVersion"] == "17"
    assert cluster["size"] == config["dbSize"]
    assert cluster["region"] == config["region"] == "nyc3"
    assert cluster["nodeCount"] == int(config["dbNodeCount"])
    assert cluster["maintenanceWindows"] == [
        {"day": config["maintenanceDay"], "hour": config["maintenanceHour"]}
    ]
    assert f"env:{stack_run.stack}" in cluster["tags"], cluster["tags"]
    assert cluster["name"] == f"handled-primary-{stack_run.stack}"


def test_prod_matches_the_deployment_checklist(prod_run: ProgramRun) -> None:
    cluster = prod_run.one(CLUSTER).inputs
    pool = prod_run.one(POOL).inputs
    assert (cluster["version"], cluster["size"], cluster["region"]) == (
        "17",
        "db-s-1vcpu-1gb",
        "nyc3",
    )
    assert (pool["mode"], pool["size"]) == ("transaction", 15)
    hour = int(cluster["maintenanceWindows"][0]["hour"].split(":")[0])
    assert 2 <= hour <= 6, f"maintenance window {cluster['maintenanceWindows']} is not off-peak"


def test_staging_is_a_smaller_unprotected_copy(prod_run: ProgramRun) -> None:
    staging = run_program("staging")
    assert staging.one(POOL).inputs["size"] < prod_run.one(POOL).inputs["size"]
    assert staging.one(CLUSTER).inputs["size"] == prod_run.one(CLUSTER).inputs["size"]
    assert not any(r.protect for r in staging.resources), [
        r.name for r in staging.resources if r.protect
    ]


def test_prod_protects_cluster_data_firewall_and_backups(prod_run: ProgramRun) -> None:
    assert json.loads(stack_config("prod")["protect"]) is True
    protected = {r.type for r in prod_run.resources if r.protect}
    assert protected == {CLUSTER, DATABASE, USER, FIREWALL, BUCKET}


def test_app_database_and_user_live_on_the_cluster(stack_run: ProgramRun) -> None:
    config = stack_config(stack_run.stack)
    cluster_id = f"{stack_run.one(CLUSTER).name}-id"
    db = stack_run.one(DATABASE).inputs
    user = stack_run.one(USER).inputs
    assert (db["clusterId"], db["name"]) == (cluster_id, config["dbName"])
    assert (user["clusterId"], user["name"]) == (cluster_id, config["appUser"])


def test_pool_uses_the_configured_mode_and_size_on_the_app_database_and_user(
    stack_run: ProgramRun,
) -> None:
    config = stack_config(stack_run.stack)
    pool = stack_run.one(POOL).inputs
    assert pool["clusterId"] == f"{stack_run.one(CLUSTER).name}-id"
    assert pool["mode"] == config["poolMode"] == "transaction"
    assert pool["size"] == int(config["poolSize"])
    assert pool["name"] == config["poolName"]
    assert pool["dbName"] == stack_run.one(DATABASE).inputs["name"]
    assert pool["user"] == stack_run.one(USER).inputs["name"]


def _firewall_ips(firewall: Recorded) -> list[str]:
    rules = firewall.inputs["rules"]
    assert all(rule["type"] == "ip_addr" for rule in rules), rules
    for rule in rules:
        network = ipaddress.ip_network(rule["value"])
        assert network.prefixlen == 32, f"rule {rule} admits more than one host"
        assert network != ipaddress.ip_network("0.0.0.0/0")
    return [rule["value"] for rule in rules]


def test_exactly_one_firewall_admits_only_the_vps_droplet(stack_run: ProgramRun) -> None:
    config = stack_config(stack_run.stack)
    firewall = stack_run.one(FIREWALL)
    assert firewall.inputs["clusterId"] == f"{stack_run.one(CLUSTER).name}-id"
    assert _firewall_ips(firewall) == [DROPLET_IP]
    lookups = [args for token, args in stack_run.calls if token == GET_DROPLET]
    assert lookups == [{"name": config["vpsDropletName"]}]


def test_firewall_admits_exactly_the_configured_vps_ips() -> None:
    run = run_program(
        "prod",
        overrides={"vpsIps": '["159.203.10.20", "167.99.1.2"]'},
        remove=("vpsDropletName",),
    )
    assert _firewall_ips(run.one(FIREWALL)) == ["159.203.10.20", "167.99.1.2"]
    assert not [token for token, _ in run.calls if token == GET_DROPLET]
    assert {a.inputs["type"] for a in run.of_type(ALERT)} == DATABASE_ALERTS, (
        "no droplet: no VPS alerts"
    )


def test_firewall_joins_configured_ips_and_the_droplet_without_duplicates() -> None:
    run = run_program("prod", overrides={"vpsIps": json.dumps([DROPLET_IP, "167.99.1.2"])})
    assert _firewall_ips(run.one(FIREWALL)) == sorted({DROPLET_IP, "167.99.1.2"})


def test_droplet_in_another_region_stops_the_program() -> None:
    with pytest.raises(ValueError, match="droplet 'handled-vps' is in region 'sfo3', not 'nyc3'"):
        run_program("prod", droplet_region="sfo3")


def test_postgresql_config_sets_backup_time_and_idle_transaction_timeout(
    stack_run: ProgramRun,
) -> None:
    config = stack_config(stack_run.stack)
    settings = stack_run.one(PG_CONFIG).inputs
    assert settings["clusterId"] == f"{stack_run.one(CLUSTER).name}-id"
    assert settings["backupHour"] == int(config["backupHour"])
    assert settings["backupMinute"] == int(config["backupMinute"])
    assert 0 < settings["idleInTransactionSessionTimeout"] <= 600_000
    assert settings["logMinDurationStatement"] > 0


def _alerts(run: ProgramRun, types: set[str]) -> dict[str, dict[str, object]]:
    found = {a.inputs["type"]: a.inputs for a in run.of_type(ALERT) if a.inputs["type"] in types}
    assert set(found) == types, sorted(found)
    return found


def test_alerts_cover_cpu_memory_disk_and_load_and_email_the_configured_addresses(
    stack_run: ProgramRun,
) -> None:
    emails = json.loads(stack_config(stack_run.stack)["alertEmails"])
    cluster_id = f"{stack_run.one(CLUSTER).name}-id"
    alerts = _alerts(stack_run, DATABASE_ALERTS)
    assert len(stack_run.of_type(ALERT)) == len(DATABASE_ALERTS) + len(DROPLET_ALERTS)
    for alert_type, alert in alerts.items():
        assert alert["entities"] == [cluster_id], alert_type
        assert alert["alerts"] == {"emails": emails}, alert_type
        assert alert["compare"] == "GreaterThan", alert_type
        assert alert["enabled"] is True, alert_type
        assert stack_run.stack in str(alert["description"]), alert_type
    for alert_type in ("cpu_alerts", "memory_utilization_alerts", "disk_utilization_alerts"):
        assert 50 <= alerts[f"v1/dbaas/alerts/{alert_type}"]["value"] <= 95, alert_type  # type: ignore[operator]


def test_the_vps_droplet_has_cpu_memory_and_disk_alerts_from_the_same_lookup(
    stack_run: ProgramRun,
) -> None:
    emails = json.loads(stack_config(stack_run.stack)["alertEmails"])
    alerts = _alerts(stack_run, DROPLET_ALERTS)
    for alert_type, alert in alerts.items():
        assert alert["entities"] == [str(DROPLET_ID)], alert_type
        assert alert["alerts"] == {"emails": emails}, alert_type
        assert alert["compare"] == "GreaterThan", alert_type
        assert alert["enabled"] is True, alert_type
        assert 50 <= alert["value"] <= 95, alert_type  # type: ignore[operator]
        assert f"handled {stack_run.stack} VPS" in str(alert["description"]), alert_type
    assert len([t for t, _ in stack_run.calls if t == GET_DROPLET]) == 1, stack_run.calls


def _documented_values(schema: SchemaChecker, name: str) -> set[str]:
    """The values the provider schema's description of a MonitorAlert input lists."""
    description = schema.resources[ALERT]["inputProperties"][name]["description"]
    return set(re.findall(r"`([^`<>\s]+)`", description))


def test_alert_types_comparisons_and_windows_are_values_the_schema_documents(
    stack_run: ProgramRun, schema: SchemaChecker
) -> None:
    # The schema types these as plain strings and lists the allowed values in prose.
    types = _documented_values(schema, "type")
    assert types >= DATABASE_ALERTS | DROPLET_ALERTS, sorted(types)
    assert "v1/insights/droplet/cpu_percent" not in types  # the check can tell a wrong name
    for alert in stack_run.of_type(ALERT):
        assert alert.inputs["type"] in types
        assert alert.inputs["compare"] in _documented_values(schema, "compare")
        assert alert.inputs["window"] in _documented_values(schema, "window")


def test_a_configured_slack_channel_gets_every_alert_with_the_webhook_secret(
    schema: SchemaChecker,
) -> None:
    run = run_program(
        "prod",
        overrides={"alertSlackChannel": "#ops-alerts"},
        secrets={"alertSlackWebhookUrl": WEBHOOK},
    )
    alerts = run.of_type(ALERT)
    assert len(alerts) == len(DATABASE_ALERTS) + len(DROPLET_ALERTS)
    for alert in alerts:
        assert alert.inputs["alerts"]["slacks"] == [{"channel": "#ops-alerts", "url": WEBHOOK}]
        assert alert.inputs["alerts"]["emails"] == ["ops@handledcommerce.com"]
        assert alert.secret_inputs == {"alerts.slacks[0].url"}, alert.secret_inputs
        assert schema.problems(ALERT, alert.inputs) == []
    assert WEBHOOK not in json.dumps(run.outputs, default=str)


def test_a_slack_webhook_set_in_plain_text_stops_the_program_without_showing_it() -> None:
    run = ProgramRun(stack="prod")
    with pytest.raises(ConfigError) as caught:
        run_program(
            "prod",
            overrides={"alertSlackChannel": "#ops-alerts", "alertSlackWebhookUrl": WEBHOOK},
            run=run,
        )
    message = str(caught.value)
    assert message.startswith("handled-infra:alertSlackWebhookUrl='[secret]': must be set with")
    assert "s3cr3t" not in message
    assert run.resources == []


def test_backup_bucket_is_private_versioned_and_expires_old_dumps(stack_run: ProgramRun) -> None:
    config = stack_config(stack_run.stack)
    bucket = stack_run.one(BUCKET).inputs
    assert bucket["name"] == config["backupBucket"]
    assert bucket["region"] == config["region"]
    assert bucket["acl"] == "private"
    assert bucket["versioning"] == {"enabled": True}
    assert bucket["forceDestroy"] is False
    rules = {rule["id"]: rule for rule in bucket["lifecycleRules"]}
    retention = int(config["backupRetentionDays"])
    expire = rules["expire-old-dumps"]
    assert expire["enabled"] is True
    assert expire["expiration"] == {"days": retention}
    assert expire["noncurrentVersionExpiration"] == {"days": retention}
    abort = rules["abort-incomplete-uploads"]
    assert abort["enabled"] is True
    assert abort["abortIncompleteMultipartUploadDays"] == 1


def test_ca_certificate_comes_from_get_database_ca(stack_run: ProgramRun) -> None:
    cluster_id = f"{stack_run.one(CLUSTER).name}-id"
    assert [args for token, args in stack_run.calls if token == GET_CA] == [
        {"clusterId": cluster_id}
    ]
    assert stack_run.outputs["caCertificate"] == CA_PEM


def test_auth_secret_is_a_long_random_password(stack_run: ProgramRun) -> None:
    password = stack_run.one(PASSWORD).inputs
    assert password["length"] >= 32
    assert len(stack_run.outputs["authSecret"]) == password["length"]
    assert "authSecret" in stack_run.secret_outputs
