"""The schema checker itself: it must catch what mocks let through."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.harness import BUCKET, CLUSTER, FIREWALL, POOL
from tests.infra.schema_check import SchemaChecker

GOOD_CLUSTER: dict[str, Any] = {
    "engine": "pg",
    "version": "17",
    "size": "db-s-1vcpu-1gb",
    "region": "nyc3",
    "nodeCount": 1.0,
    "maintenanceWindows": [{"day": "sunday", "hour": "04:00"}],
    "tags": ["handled"],
}


def test_a_correct_cluster_passes(schema: SchemaChecker) -> None:
    assert schema.problems(CLUSTER, GOOD_CLUSTER) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"nodeCont": 1.0}, "unknown property 'nodeCont'"),
        ({"node_count": 1.0}, "unknown property 'node_count'"),
        ({"nodeCount": None}, "required input 'nodeCount' is missing"),
        ({"nodeCount": 1.5}, "nodeCount: expected integer, got 1.5"),
        ({"nodeCount": "1"}, "nodeCount: expected integer, got '1'"),
        ({"region": "nyc9"}, "region: 'nyc9' is not one of"),
        ({"size": "db-s-1vcpu-512mb"}, "size: 'db-s-1vcpu-512mb' is not one of"),
        ({"tags": "handled"}, "tags: expected an array"),
        ({"maintenanceWindows": [{"day": "sunday"}]}, "required input 'hour' is missing"),
        ({"maintenanceWindows": [{"day": "sunday", "hour": 4.0}]}, "hour: expected string"),
        ({"maintenanceWindows": [{"day": "sunday", "hour": "04:00", "hours": "x"}]}, "'hours'"),
    ],
)
def test_a_bad_cluster_input_is_reported(
    schema: SchemaChecker, change: dict[str, Any], expected: str
) -> None:
    problems = schema.problems(CLUSTER, GOOD_CLUSTER | change)
    assert any(expected in p for p in problems), problems


def test_nested_types_resolve_through_refs(schema: SchemaChecker) -> None:
    bucket = {"name": "b", "acl": "private", "versioning": {"enabled": "yes"}}
    assert schema.problems(BUCKET, bucket) == [
        f"{BUCKET}.versioning.enabled: expected boolean, got 'yes'"
    ]
    rules = {"clusterId": "c", "rules": [{"type": "ip_addr", "valeu": "1.2.3.4"}]}
    problems = schema.problems(FIREWALL, rules)
    assert f"{FIREWALL}.rules[0]: required input 'value' is missing" in problems
    assert any("unknown property 'valeu'" in p for p in problems), problems


def test_a_boolean_is_not_an_integer(schema: SchemaChecker) -> None:
    pool = {"clusterId": "c", "dbName": "d", "mode": "transaction", "size": True}
    assert schema.problems(POOL, pool) == [f"{POOL}.size: expected integer, got True"]


def test_an_unknown_resource_type_is_reported(schema: SchemaChecker) -> None:
    assert schema.problems("digitalocean:index/databaseCa:DatabaseCa", {}) == [
        "digitalocean:index/databaseCa:DatabaseCa: not a resource of the provider schema"
    ]
