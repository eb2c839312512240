"""The pack's policies: the rule functions wrapped for CrossGuard, all mandatory.

`POLICIES` is what ``policy/__main__.py`` hands to `PolicyPack`; tests call each policy's
``validate(args, report)`` directly.
"""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ResourceValidationPolicy,
    StackValidationPolicy,
)

from policy import resource_rules, stack_rules

PACK_NAME = "handled-infra-policies"
MANDATORY = EnforcementLevel.MANDATORY

POSTGRES_VERSION = ResourceValidationPolicy(
    name="postgres-version",
    description="PostgreSQL clusters pin major version 17 or later.",
    validate=resource_rules.postgres_version,
    enforcement_level=MANDATORY,
)
ALLOWED_REGIONS = ResourceValidationPolicy(
    name="allowed-regions",
    description="Database clusters and Spaces buckets sit in the VPS's region (nyc3).",
    validate=resource_rules.allowed_region,
    enforcement_level=MANDATORY,
)
FIREWALL_NOT_OPEN = ResourceValidationPolicy(
    name="firewall-not-open",
    description="Database firewalls have rules and none admits 0.0.0.0/0 or a wide public range.",
    validate=resource_rules.firewall_not_open,
    enforcement_level=MANDATORY,
)
ONE_FIREWALL_PER_CLUSTER = StackValidationPolicy(
    name="one-firewall-per-cluster",
    description="Every database cluster has exactly one firewall.",
    validate=stack_rules.one_firewall_per_cluster,
    enforcement_level=MANDATORY,
)
POOL_TRANSACTION_MODE = ResourceValidationPolicy(
    name="pool-transaction-mode",
    description="Connection pools use PgBouncer transaction mode.",
    validate=resource_rules.pool_transaction_mode,
    enforcement_level=MANDATORY,
)
POOLS_WITHIN_PLAN = StackValidationPolicy(
    name="pools-within-plan",
    description="Pools plus 3 direct connections fit the plan (25 per GB minus 3 reserved).",
    validate=stack_rules.pools_within_plan,
    enforcement_level=MANDATORY,
)
PRIVATE_VERSIONED_BUCKETS = ResourceValidationPolicy(
    name="private-versioned-buckets",
    description="Backup buckets are private and versioned.",
    validate=resource_rules.private_versioned_bucket,
    enforcement_level=MANDATORY,
)
PROTECTED_PROD_CLUSTERS = ResourceValidationPolicy(
    name="protected-prod-clusters",
    description="Database clusters in production stacks are protected.",
    validate=resource_rules.protected_prod_cluster,
    enforcement_level=MANDATORY,
)

POLICIES: list[Policy] = [
    POSTGRES_VERSION,
    ALLOWED_REGIONS,
    FIREWALL_NOT_OPEN,
    ONE_FIREWALL_PER_CLUSTER,
    POOL_TRANSACTION_MODE,
    POOLS_WITHIN_PLAN,
    PRIVATE_VERSIONED_BUCKETS,
    PROTECTED_PROD_CLUSTERS,
]
