"""The firewall rules ("trusted sources") that admit the VPS and nothing else.

The VPS is named either by its public IPv4 addresses or by its droplet name, looked up once at
preview time (`find_droplet`; the droplet's alerts use the same lookup); both give ``ip_addr``
rules, one per address, so the rule set reads the same either way. A rule is never wider than
one host: no CIDR, never ``0.0.0.0/0``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as digitalocean


class TrustedSourceError(ValueError):
    """The VPS cannot be admitted as given (a bad address, or a droplet in another region)."""


@dataclass(frozen=True)
class VpsDroplet:
    """The VPS's droplet as DigitalOcean knows it (looked up by name)."""

    name: str
    id: pulumi.Output[str]
    ipv4: pulumi.Output[str]
    region: pulumi.Output[str]


def find_droplet(name: str) -> VpsDroplet:
    """Look the droplet up by name (a provider function: fails the preview when it is absent)."""
    found = digitalocean.get_droplet_output(name=name)
    return VpsDroplet(
        name=name, id=found.id.apply(str), ipv4=found.ipv4_address, region=found.region
    )


def vps_firewall_rules(
    *, ips: Sequence[str], droplet: VpsDroplet | None, region: str
) -> pulumi.Output[list[digitalocean.DatabaseFirewallRuleArgs]]:
    """One ``ip_addr`` rule per VPS address: the given IPs plus the droplet's public IPv4."""
    if droplet is None:
        return pulumi.Output.from_input(_rules(ips))
    return pulumi.Output.all(droplet.ipv4, droplet.region).apply(
        lambda found: _rules([*ips, _droplet_ip(droplet.name, found[0], found[1], region)])
    )


def _droplet_ip(name: str, ipv4: str, droplet_region: str, region: str) -> str:
    if droplet_region != region:
        raise TrustedSourceError(
            f"droplet {name!r} is in region {droplet_region!r}, not {region!r}:"
            " the cluster must sit in the VPS's region"
        )
    return ipv4


def _rules(ips: Iterable[str]) -> list[digitalocean.DatabaseFirewallRuleArgs]:
    rules = []
    for ip in sorted(set(ips)):
        address = ipaddress.ip_address(ip)
        if address.version != 4 or not address.is_global:
            raise TrustedSourceError(f"VPS address {ip!r} is not a public IPv4 address")
        rules.append(digitalocean.DatabaseFirewallRuleArgs(type="ip_addr", value=str(address)))
    if not rules:
        raise TrustedSourceError("no VPS address to admit: the firewall would have no rule")
    return rules
