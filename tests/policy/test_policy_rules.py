"""Each policy with one compliant and one violating resource, through ``policy.validate``."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

from policy import policies
from policy.do_facts import BUCKET, CLUSTER, FIREWALL, POOL
from tests.policy.builders import (
    Violations,
    resource_args,
    stack_args,
    stack_resource,
)

CLUSTER_PROPS: dict[str, Any] = {
    "engine": "pg",
    "version": "17",
    "size": "db-s-1vcpu-1gb",
    "region": "nyc3",
    "nodeCount": 1,
}
BUCKET_PROPS: dict[str, Any] = {"name": "b", "acl": "private", "versioning": {"enabled": True}}


def check(
    policy: ResourceValidationPolicy, resource_type: str, props: dict[str, Any], **kw: Any
) -> list[str]:
    """The violations `policy` reports for one resource."""
    violations = Violations()
    policy.validate(resource_args(resource_type, props, name="subject", **kw), violations)
    return violations.messages


@pytest.mark.parametrize(
    ("policy", "resource_type", "good", "bad", "expected"),
    [
        pytest.param(
            policies.POSTGRES_VERSION,
            CLUSTER,
            CLUSTER_PROPS,
            CLUSTER_PROPS | {"version": "16"},
            "cluster 'subject' runs PostgreSQL '16'; PRIMARY needs 17 or later",
            id="postgres-version-16",
        ),
        pytest.param(
            policies.POSTGRES_VERSION,
            CLUSTER,
            CLUSTER_PROPS | {"version": "18"},
            {k: v for k, v in CLUSTER_PROPS.items() if k != "version"},
            "cluster 'subject' runs PostgreSQL None",
            id="postgres-version-unpinned",
        ),
        pytest.param(
            policies.ALLOWED_REGIONS,
            CLUSTER,
            CLUSTER_PROPS,
            CLUSTER_PROPS | {"region": "sfo3"},
            "cluster 'subject' is in region 'sfo3'; allowed: ['nyc3']",
            id="region-cluster",
        ),
        pytest.param(
            policies.ALLOWED_REGIONS,
            BUCKET,
            {"name": "b"},
            BUCKET_PROPS | {"region": "ams3"},
            "bucket 'subject' is in region 'ams3'",
            id="region-bucket",
        ),
        pytest.param(
            policies.FIREWALL_NOT_OPEN,
            FIREWALL,
            {"clusterId": "c", "rules": [{"type": "ip_addr", "value": "159.203.64.10"}]},
            {"clusterId": "c", "rules": [{"type": "ip_addr", "value": "0.0.0.0/0"}]},
            "rule {'type': 'ip_addr', 'value': '0.0.0.0/0'} admits every address",
            id="firewall-open-all",
        ),
        pytest.param(
            policies.FIREWALL_NOT_OPEN,
            FIREWALL,
            {"clusterId": "c", "rules": [{"type": "ip_addr", "value": "10.10.0.0/16"}]},
            {"clusterId": "c", "rules": [{"type": "ip_addr", "value": "128.0.0.0/1"}]},
            "admits a public range wider than /24",
            id="firewall-wide-public",
        ),
        pytest.param(
            policies.FIREWALL_NOT_OPEN,
            FIREWALL,
            {"clusterId": "c", "rules": [{"type": "droplet", "value": "4242"}]},
            {"clusterId": "c", "rules": []},
            "firewall 'subject' has no rule: the cluster would accept any address",
            id="firewall-no-rules",
        ),
        pytest.param(
            policies.POOL_TRANSACTION_MODE,
            POOL,
            {"clusterId": "c", "dbName": "d", "mode": "transaction", "size": 15},
            {"clusterId": "c", "dbName": "d", "mode": "session", "size": 15},
            "pool 'subject' is in mode 'session'; PRIMARY's pools use 'transaction'",
            id="pool-session-mode",
        ),
        pytest.param(
            policies.PRIVATE_VERSIONED_BUCKETS,
            BUCKET,
            BUCKET_PROPS,
            BUCKET_PROPS | {"acl": "public-read"},
            "bucket 'subject' has acl 'public-read'; backups must be 'private'",
            id="bucket-public",
        ),
        pytest.param(
            policies.PRIVATE_VERSIONED_BUCKETS,
            BUCKET,
            {"name": "b", "versioning": {"enabled": True}},
            {"name": "b", "acl": "private"},
            "bucket 'subject' is not versioned",
            id="bucket-unversioned",
        ),
    ],
)
def test_resource_policy(
    policy: ResourceValidationPolicy,
    resource_type: str,
    good: dict[str, Any],
    bad: dict[str, Any],
    expected: str,
) -> None:
    assert check(policy, resource_type, good) == []
    messages = check(policy, resource_type, bad)
    assert len(messages) == 1, messages
    assert expected in messages[0], messages


def test_protected_prod_clusters() -> None:
    policy = policies.PROTECTED_PROD_CLUSTERS
    assert check(policy, CLUSTER, CLUSTER_PROPS, stack="prod", protect=True) == []
    assert check(policy, CLUSTER, CLUSTER_PROPS, stack="staging", protect=False) == []
    assert check(policy, CLUSTER, CLUSTER_PROPS, stack="prod", protect=False) == [
        "cluster 'subject' in stack 'prod' is not protected (protect=True)"
    ]


def test_resource_policies_ignore_other_types() -> None:
    for policy in policies.POLICIES:
        if isinstance(policy, ResourceValidationPolicy):
            assert check(policy, "random:index/randomPassword:RandomPassword", {"length": 8}) == []


def _cluster_with(
    resource_type: str, props_list: list[dict[str, Any]], cluster_props: dict[str, Any]
) -> Violations:
    cluster = stack_resource(CLUSTER, cluster_props, name="primary-cluster")
    attached = [
        stack_resource(resource_type, props, name=f"att-{i}", depends_on={"clusterId": [cluster]})
        for i, props in enumerate(props_list)
    ]
    violations = Violations()
    policy = (
        policies.ONE_FIREWALL_PER_CLUSTER
        if resource_type == FIREWALL
        else policies.POOLS_WITHIN_PLAN
    )
    policy.validate(stack_args([cluster, *attached]), violations)
    return violations


def test_one_firewall_per_cluster() -> None:
    rules = {"rules": [{"type": "ip_addr", "value": "159.203.64.10"}]}
    assert _cluster_with(FIREWALL, [rules], CLUSTER_PROPS).reported == []
    for count in (0, 2):
        violations = _cluster_with(FIREWALL, [rules] * count, CLUSTER_PROPS)
        assert len(violations.reported) == 1, violations.reported
        message, urn = violations.reported[0]
        assert message.startswith(f"cluster 'primary-cluster' has {count} firewalls"), message
        assert urn is not None
        assert urn.endswith("::primary-cluster")


def test_pools_within_plan() -> None:
    pool = {"mode": "transaction", "dbName": "handled"}
    assert _cluster_with(POOL, [pool | {"size": 15.0}], CLUSTER_PROPS).reported == []
    assert _cluster_with(POOL, [pool | {"size": 19.0}], CLUSTER_PROPS).reported == []
    too_many = _cluster_with(POOL, [pool | {"size": 15.0}, pool | {"size": 5.0}], CLUSTER_PROPS)
    assert too_many.messages == [
        "cluster 'primary-cluster' (db-s-1vcpu-1gb) pools 20 connections plus 3 direct:"
        " more than its 22 usable"
    ]
    bigger = CLUSTER_PROPS | {"size": "db-s-2vcpu-4gb"}
    assert _cluster_with(POOL, [pool | {"size": 20.0}], bigger).reported == []
    unknown = _cluster_with(POOL, [pool | {"size": 5.0}], CLUSTER_PROPS | {"size": "gd-2vcpu"})
    assert unknown.messages == ["cluster 'primary-cluster' has size 'gd-2vcpu', not a known plan"]


def test_every_policy_is_mandatory_and_named_once() -> None:
    names = [policy.name for policy in policies.POLICIES]
    assert len(names) == len(set(names)) == 8
    assert all(p.enforcement_level == EnforcementLevel.MANDATORY for p in policies.POLICIES)
    assert {type(p) for p in policies.POLICIES} == {
        ResourceValidationPolicy,
        StackValidationPolicy,
    }
