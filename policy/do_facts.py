"""The DigitalOcean facts and project decisions the policies enforce.

Kept apart from ``infra/`` on purpose: a policy that reused the program's own numbers would agree
with any mistake in them.
"""

from __future__ import annotations

import re

CLUSTER = "digitalocean:index/databaseCluster:DatabaseCluster"
FIREWALL = "digitalocean:index/databaseFirewall:DatabaseFirewall"
POOL = "digitalocean:index/databaseConnectionPool:DatabaseConnectionPool"
BUCKET = "digitalocean:index/spacesBucket:SpacesBucket"

#: PRIMARY runs PostgreSQL 17 or later.
MIN_PG_VERSION = 17
#: The VPS is in NYC3; the database and the backups sit next to it.
ALLOWED_REGIONS = frozenset({"nyc3"})
#: Stacks whose clusters must be protected from `pulumi destroy` and replacements.
PROTECTED_STACKS = frozenset({"prod", "production"})
#: 25 backend connections per GB of RAM, 3 reserved by DigitalOcean for maintenance.
CONNECTIONS_PER_GB = 25
RESERVED_CONNECTIONS = 3
#: Connections left outside the pools for migrations and the data copy (direct port 25060).
DIRECT_CONNECTIONS = 3
#: A public ``ip_addr`` rule may admit at most a /24; anything wider counts as open.
WIDEST_PUBLIC_PREFIX = 24

_SIZE_RE = re.compile(r"^db-s-\d+vcpu-(?P<gb>\d+)gb$")


def usable_connections(size: str) -> int | None:
    """Connections a ``db-s-<n>vcpu-<m>gb`` plan offers (22 on 1 GB); None for an unknown slug."""
    match = _SIZE_RE.match(size)
    if match is None:
        return None
    return CONNECTIONS_PER_GB * int(match["gb"]) - RESERVED_CONNECTIONS


def stack_of(urn: str) -> str:
    """The stack named in a URN (``urn:pulumi:<stack>::<project>::<type>::<name>``)."""
    return urn.removeprefix("urn:pulumi:").split("::", 1)[0]
