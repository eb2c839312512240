"""Checks across the stack: what hangs off each cluster.

A firewall or pool belongs to the cluster its ``clusterId`` input comes from, read from the
resource's property dependencies, so the checks also work in previews of new clusters, whose ids
are not known yet.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from pulumi_policy import PolicyResource, ReportViolation, StackValidationArgs

from policy.do_facts import CLUSTER, DIRECT_CONNECTIONS, FIREWALL, POOL, usable_connections


def one_firewall_per_cluster(args: StackValidationArgs, report: ReportViolation) -> None:
    """Every cluster has exactly one firewall (each firewall replaces the whole rule set)."""
    clusters = [r for r in args.resources if r.resource_type == CLUSTER]
    firewalls = _by_cluster(r for r in args.resources if r.resource_type == FIREWALL)
    for cluster in clusters:
        attached = firewalls.get(cluster.urn, [])
        if len(attached) != 1:
            names = [f.name for f in attached]
            report(
                f"cluster {cluster.name!r} has {len(attached)} firewalls {names};"
                " it needs exactly one",
                cluster.urn,
            )


def pools_within_plan(args: StackValidationArgs, report: ReportViolation) -> None:
    """A cluster's pools, plus the direct connections, fit its plan's connection limit."""
    pools = _by_cluster(r for r in args.resources if r.resource_type == POOL)
    for cluster in (r for r in args.resources if r.resource_type == CLUSTER):
        attached = pools.get(cluster.urn, [])
        if not attached:
            continue
        size = str(cluster.props.get("size"))
        usable = usable_connections(size)
        if usable is None:
            report(f"cluster {cluster.name!r} has size {size!r}, not a known plan", cluster.urn)
            continue
        pooled = sum(int(pool.props.get("size", 0)) for pool in attached)
        if pooled + DIRECT_CONNECTIONS > usable:
            report(
                f"cluster {cluster.name!r} ({size}) pools {pooled} connections plus"
                f" {DIRECT_CONNECTIONS} direct: more than its {usable} usable",
                cluster.urn,
            )


def _by_cluster(resources: Iterable[PolicyResource]) -> dict[str, list[PolicyResource]]:
    """Resources grouped by the URN of the cluster their ``clusterId`` comes from."""
    grouped: dict[str, list[PolicyResource]] = defaultdict(list)
    for resource in resources:
        for source in resource.property_dependencies.get("clusterId", []):
            if source.resource_type == CLUSTER:
                grouped[source.urn].append(resource)
    return grouped
