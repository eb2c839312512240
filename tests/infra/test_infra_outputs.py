"""The stack outputs: names, values, and which are secret; the URLs the app and the copy use."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from tests.infra.harness import USER_PASSWORD, ProgramRun, run_program, stack_config

OUTPUTS = {
    "clusterId",
    "host",
    "port",
    "poolHost",
    "poolPort",
    "poolName",
    "poolSize",
    "caCertificate",
    "caCertPath",
    "prismaPgbouncer",
    "primaryDatabaseUrl",
    "primaryDirectUrl",
    "backupBucketName",
    "backupBucketEndpoint",
    "backupBucketRegion",
    "authSecret",
    "notifySlackWebhook",
    "notifySmtpUrl",
    "notifyEmails",
    "notifyFrom",
}
SECRETS = {
    "primaryDatabaseUrl",
    "primaryDirectUrl",
    "authSecret",
    "notifySlackWebhook",
    "notifySmtpUrl",
}


def test_every_output_is_exported_and_exactly_the_secrets_are_secret(
    stack_run: ProgramRun,
) -> None:
    assert set(stack_run.outputs) == OUTPUTS
    assert stack_run.secret_outputs == SECRETS


def test_connection_outputs_name_the_cluster_and_its_pool(stack_run: ProgramRun) -> None:
    config = stack_config(stack_run.stack)
    outputs = stack_run.outputs
    assert outputs["clusterId"] == "primary-cluster-id"
    assert outputs["host"].startswith(f"handled-primary-{stack_run.stack}")
    assert (outputs["port"], outputs["poolPort"]) == (25060, 25061)
    assert outputs["poolHost"] == outputs["host"]
    assert outputs["poolName"] == config["poolName"]
    assert outputs["caCertPath"] == config["caCertPath"]
    assert outputs["poolSize"] == int(config["poolSize"])


def test_backup_bucket_outputs(stack_run: ProgramRun) -> None:
    config = stack_config(stack_run.stack)
    assert stack_run.outputs["backupBucketName"] == config["backupBucket"]
    assert stack_run.outputs["backupBucketEndpoint"] == f"{config['region']}.digitaloceanspaces.com"
    assert stack_run.outputs["backupBucketRegion"] == config["region"]


def test_primary_database_url_goes_through_the_pool_with_tls_and_pgbouncer(
    stack_run: ProgramRun,
) -> None:
    config = stack_config(stack_run.stack)
    url = urlsplit(stack_run.outputs["primaryDatabaseUrl"])
    assert url.scheme == "postgresql"
    assert (url.hostname, url.port) == (stack_run.outputs["poolHost"], 25061)
    assert url.path == f"/{config['poolName']}", "through a pool the database is the pool's name"
    assert unquote(url.username or "") == config["appUser"]
    assert unquote(url.password or "") == USER_PASSWORD
    query = parse_qs(url.query)
    assert query == {
        "sslmode": ["verify-full"],
        "sslrootcert": [config["caCertPath"]],
        "pgbouncer": ["true"],
    }


def test_primary_direct_url_bypasses_the_pool_for_migrations_and_the_copy(
    stack_run: ProgramRun,
) -> None:
    config = stack_config(stack_run.stack)
    url = urlsplit(stack_run.outputs["primaryDirectUrl"])
    assert url.scheme == "postgresql"
    assert (url.hostname, url.port) == (stack_run.outputs["host"], 25060)
    assert url.path == f"/{config['dbName']}"
    assert unquote(url.username or "") == config["appUser"]
    assert unquote(url.password or "") == USER_PASSWORD
    query = parse_qs(url.query)
    assert query == {"sslmode": ["verify-full"], "sslrootcert": [config["caCertPath"]]}


def test_prisma_pgbouncer_false_reaches_the_url_and_the_output(stack_run: ProgramRun) -> None:
    assert "prismaPgbouncer" not in stack_config(stack_run.stack), "the stacks keep the default"
    assert stack_run.outputs["prismaPgbouncer"] is True
    run = run_program(stack_run.stack, overrides={"prismaPgbouncer": "false"})
    assert run.outputs["prismaPgbouncer"] is False
    query = parse_qs(urlsplit(run.outputs["primaryDatabaseUrl"]).query)
    assert query["pgbouncer"] == ["false"]
    assert "primaryDatabaseUrl" in run.secret_outputs
    direct = parse_qs(urlsplit(run.outputs["primaryDirectUrl"]).query)
    assert "pgbouncer" not in direct
