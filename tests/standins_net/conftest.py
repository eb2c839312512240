"""Fixtures for the network-namespace stand-ins: one VPS namespace for the module's tests.

As root on this machine `ip netns` works, so `vps_network()` must give a real namespace here
(a Loopback would hide a regression): the fixture asserts it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from standins.netns import VpsNamespace, vps_network

NET_USER = "handled-netns"
"""The deploy user of the SshHost in the namespace (its own: the lock is per user)."""


@pytest.fixture(scope="module")
def net() -> Iterator[VpsNamespace]:
    """A fresh VPS network namespace (closed at the end of the module)."""
    network = vps_network()
    assert isinstance(network, VpsNamespace), network.describe()
    with network:
        yield network
