"""Checks of one resource at a time: each takes the resource's args and a violation callback.

Each check ignores resource types it is not about, and reports one line per problem naming the
resource and the offending value, e.g. for a pg cluster on version "16"::

    cluster 'primary-cluster' runs PostgreSQL '16'; PRIMARY needs 17 or later, pinned
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs

from policy.do_facts import (
    ALLOWED_REGIONS,
    BUCKET,
    CLUSTER,
    FIREWALL,
    MIN_PG_VERSION,
    POOL,
    PROTECTED_STACKS,
    WIDEST_PUBLIC_PREFIX,
    stack_of,
)


def postgres_version(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """A PostgreSQL cluster pins a major version of at least `MIN_PG_VERSION`."""
    if args.resource_type != CLUSTER or args.props.get("engine") != "pg":
        return
    version = args.props.get("version")
    if not isinstance(version, str) or not version.isdigit() or int(version) < MIN_PG_VERSION:
        report(
            f"cluster {args.name!r} runs PostgreSQL {version!r};"
            f" PRIMARY needs {MIN_PG_VERSION} or later, pinned",
            None,
        )


def allowed_region(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Clusters and buckets sit in an allowed region (the VPS's); buckets default to nyc3."""
    if args.resource_type not in (CLUSTER, BUCKET):
        return
    region = args.props.get("region", "nyc3" if args.resource_type == BUCKET else None)
    if region not in ALLOWED_REGIONS:
        report(
            f"{_kind(args.resource_type)} {args.name!r} is in region {region!r};"
            f" allowed: {sorted(ALLOWED_REGIONS)}",
            None,
        )


def firewall_not_open(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """A database firewall has rules, and none admits a public range wider than a /24."""
    if args.resource_type != FIREWALL:
        return
    rules = args.props.get("rules") or []
    if not rules:
        report(f"firewall {args.name!r} has no rule: the cluster would accept any address", None)
    for rule in rules:
        problem = _open_rule(rule)
        if problem:
            report(f"firewall {args.name!r} rule {dict(rule)!r} {problem}", None)


def pool_transaction_mode(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Connection pools run PgBouncer in transaction mode (what ``pgbouncer=true`` expects)."""
    if args.resource_type != POOL:
        return
    mode = args.props.get("mode")
    if mode != "transaction":
        report(f"pool {args.name!r} is in mode {mode!r}; PRIMARY's pools use 'transaction'", None)


def private_versioned_bucket(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Backup buckets are private (the default ACL) and versioned."""
    if args.resource_type != BUCKET:
        return
    acl = args.props.get("acl", "private")
    if acl != "private":
        report(f"bucket {args.name!r} has acl {acl!r}; backups must be 'private'", None)
    versioning = args.props.get("versioning") or {}
    if versioning.get("enabled") is not True:
        report(f"bucket {args.name!r} is not versioned: set versioning.enabled = true", None)


def protected_prod_cluster(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """In a production stack the cluster is protected against deletion and replacement."""
    if args.resource_type != CLUSTER:
        return
    stack = stack_of(args.urn)
    if stack in PROTECTED_STACKS and not args.opts.protect:
        report(f"cluster {args.name!r} in stack {stack!r} is not protected (protect=True)", None)


def _open_rule(rule: Mapping[str, Any]) -> str | None:
    """Why an ``ip_addr`` rule is open, or None when it is narrow enough."""
    if rule.get("type") != "ip_addr":
        return None
    value = rule.get("value")
    try:
        network = ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        return "is not an IP address or CIDR"
    if network.prefixlen == 0:
        return "admits every address"
    if not network.is_private and network.prefixlen < WIDEST_PUBLIC_PREFIX:
        return f"admits a public range wider than /{WIDEST_PUBLIC_PREFIX}"
    return None


def _kind(resource_type: str) -> str:
    return {CLUSTER: "cluster", BUCKET: "bucket"}.get(resource_type, resource_type)
