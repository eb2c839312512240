"""The VPS's own network: a Linux network namespace joined to the host by a veth pair.

On DigitalOcean the managed cluster trusts only the VPS's address. `vps_network()` rehearses
that: where the machine allows it (root, iproute2, `ip netns add` works) it makes a namespace
with one veth pair carrying a random /30 out of 10.231.0.0/16 (the only addresses this project
ever uses): the host end (`host_address`, where DBaaS listens) and the VPS end
(`vps_address`, the one address DBaaS trusts). Elsewhere it falls back to `Loopback`, where
both addresses are 127.0.0.1 and nothing is isolated.

The stand-ins take it as `network=`: `PostgresServer.start`, `SshHost.start`, `Vps.start` run
their processes inside the namespace (`network.prefix()`), `Dbaas.start` listens on the host
end and admits only the VPS end.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import random
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from standins import cleanup
from standins.cleanup import Leftover, StandIn
from standins.system import is_root

PROJECT_SUBNET = ipaddress.ip_network("10.231.0.0/16")
"""Every address a VpsNamespace uses comes from here (nothing else is ever configured)."""
LOOPBACK = "127.0.0.1"
NAME_PREFIX = "handled-vps-"
"""Namespace names: `handled-vps-<pid>-<hex>`; a dead pid marks a leftover of a killed run."""
LINK_PREFIX = "hv"
"""Host-side veth names: `hv<hex>h` (the namespace side, `hv<hex>n`, lives inside it)."""
NETNS_DIR = Path("/run/netns")
KEPT_DIR = Path("/run/handled-standins/kept-namespaces")
"""One file per namespace detached on purpose (`Network.detach`): never swept as stale."""
LOCK_PATH = Path("/run/lock/handled-standins-netns.lock")
_ADDRESS_ATTEMPTS = 64
_IP_TIMEOUT = 20.0


class NamespaceUnavailable(RuntimeError):
    """A network namespace cannot be made on this machine (not root, no iproute2, refused)."""


def is_project_address(address: str) -> bool:
    """Whether `address` is an IPv4 address inside the project's 10.231.0.0/16."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.version == 4 and ip in PROJECT_SUBNET


class Network(StandIn):
    """Where the VPS lives, as seen by the stand-ins (base of `VpsNamespace` and `Loopback`).

    - `host_address`: where the "cloud" side (DBaaS, S3) listens, as reached from the VPS.
    - `vps_address`: the VPS's own address, the only source DBaaS trusts.
    - `namespace`: the network namespace's name, or None (no isolation).
    """

    host_address: str
    vps_address: str
    namespace: str | None

    def __init__(self, *, host_address: str, vps_address: str, namespace: str | None) -> None:
        self.host_address = host_address
        self.vps_address = vps_address
        self.namespace = namespace

    @property
    def isolated(self) -> bool:
        """Whether the VPS has its own namespace (and so its own address)."""
        return self.namespace is not None

    @property
    def vps_cidr(self) -> str:
        """`vps_address/32`: the one source DBaaS admits."""
        return f"{self.vps_address}/32"

    def prefix(self) -> list[str]:
        """The argv prefix running a command inside the VPS's namespace (`[]` without one)."""
        if self.namespace is None:
            return []
        return ["ip", "netns", "exec", self.namespace]

    def describe(self) -> str:
        """One line for reports: where the VPS is and what DBaaS trusts."""
        return f"VPS at {self.vps_address}; DBaaS trusts only {self.vps_cidr}"

    def close(self) -> None:
        """Release what this network holds; idempotent (`stop()` under another name)."""
        self.stop()

    def _shutdown(self) -> None:
        """Nothing to release here."""

    def leftovers(self) -> list[Leftover]:
        """Nothing (a loopback network holds nothing)."""
        return []

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(namespace={self.namespace!r}, "
            f"host_address={self.host_address!r}, vps_address={self.vps_address!r})"
        )


class Loopback(Network):
    """The fallback: no namespace, both sides on 127.0.0.1 (the stand-ins' default layout)."""

    reason: str

    def __init__(self, reason: str = "not requested") -> None:
        super().__init__(host_address=LOOPBACK, vps_address=LOOPBACK, namespace=None)
        self.reason = reason

    def describe(self) -> str:
        return f"fallback: loopback only (no network namespaces here: {self.reason})"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ip ARGS`; raise NamespaceUnavailable naming the command when `check` and it fails."""
    try:
        result = subprocess.run(
            ["ip", *args], capture_output=True, text=True, check=False, timeout=_IP_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise NamespaceUnavailable(f"`ip {' '.join(args)}` could not run: {err}") from None
    if check and result.returncode != 0:
        output = " ".join((result.stdout + result.stderr).split())[:300]
        raise NamespaceUnavailable(
            f"`ip {' '.join(args)}` failed (exit {result.returncode}): {output}"
        )
    return result


def _namespaces() -> list[str]:
    """The names of the named network namespaces (`ip netns list`)."""
    result = _ip("netns", "list", check=False)
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parse_name(name: str) -> tuple[int, str] | None:
    """`(pid, token)` from `handled-vps-<pid>-<token>`, or None for any other name."""
    if not name.startswith(NAME_PREFIX):
        return None
    pid, sep, token = name[len(NAME_PREFIX) :].partition("-")
    if not sep or not pid.isdigit() or not token.isalnum():
        return None
    return int(pid), token


def remove_stale_namespaces() -> list[str]:
    """Delete our namespaces (and their veth) left by runs whose process is gone, except those
    detached on purpose (see `remove_namespace`); returns the names."""
    removed = []
    for name in _namespaces():
        parsed = _parse_name(name)
        if parsed is None or _pid_alive(parsed[0]) or (KEPT_DIR / name).exists():
            continue
        remove_namespace(name, f"{LINK_PREFIX}{parsed[1]}h")
        removed.append(name)
    return removed


def remove_namespace(name: str, host_link: str) -> bool:
    """Delete the veth pair (by its host end), the namespace and its kept mark; whether the
    namespace existed."""
    existed = name in _namespaces()
    _ip("link", "del", host_link, check=False)
    _ip("netns", "del", name, check=False)
    (KEPT_DIR / name).unlink(missing_ok=True)
    return existed


def _addresses_in_use() -> list[ipaddress.IPv4Interface]:
    """IPv4 addresses (with their prefix) configured on this host's interfaces (`ip -o addr`)."""
    result = _ip("-o", "-4", "addr", "show")
    found = []
    for line in result.stdout.splitlines():
        fields = line.split()
        if "inet" in fields:
            with contextlib.suppress(ValueError, IndexError):
                found.append(ipaddress.IPv4Interface(fields[fields.index("inet") + 1]))
    return found


def _free_subnet() -> ipaddress.IPv4Network:
    """A random /30 in 10.231.0.0/16 overlapping no address or network on this host."""
    in_use = _addresses_in_use()
    count = 2 ** (30 - PROJECT_SUBNET.prefixlen)
    rng = random.SystemRandom()
    for _ in range(_ADDRESS_ATTEMPTS):
        base = int(PROJECT_SUBNET.network_address) + 4 * rng.randrange(count)
        subnet = ipaddress.IPv4Network((base, 30))
        if not any(subnet.overlaps(iface.network) for iface in in_use):
            return subnet
    raise NamespaceUnavailable("no free /30 left in 10.231.0.0/16 after 64 random picks")


@contextlib.contextmanager
def _allocation_lock() -> Iterator[None]:
    """Serialise address picking between concurrent sessions on this machine."""
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class VpsNamespace(Network):
    """A network namespace for the VPS, joined to the host by a veth pair on a private /30.

    Make one with `VpsNamespace.create()`; `close()` (or the context manager, or the exit
    hook in `standins.cleanup`) deletes the veth pair and the namespace. `detach()` leaves it
    after this process exits, marked kept (`KEPT_DIR`) so no stale sweep takes it;
    `remove_namespace` then deletes it.
    """

    namespace: str
    host_link: str
    vps_link: str
    subnet: str

    def __init__(
        self,
        *,
        namespace: str,
        host_link: str,
        vps_link: str,
        subnet: ipaddress.IPv4Network,
    ) -> None:
        host, vps = list(subnet.hosts())[:2]
        super().__init__(host_address=str(host), vps_address=str(vps), namespace=namespace)
        self.host_link = host_link
        self.vps_link = vps_link
        self.subnet = str(subnet)

    @classmethod
    def create(cls) -> VpsNamespace:
        """Make the namespace, the veth pair and addresses, `lo` up inside; clean leftovers.

        Raises NamespaceUnavailable (after undoing what it did) when the machine refuses.
        """
        if not is_root():
            raise NamespaceUnavailable("network namespaces need root")
        if shutil.which("ip") is None:
            raise NamespaceUnavailable("`ip` (iproute2) is not on PATH")
        token = secrets.token_hex(4)
        with _allocation_lock():
            remove_stale_namespaces()
            subnet = _free_subnet()
            net = cls(
                namespace=f"{NAME_PREFIX}{os.getpid()}-{token}",
                host_link=f"{LINK_PREFIX}{token}h",
                vps_link=f"{LINK_PREFIX}{token}n",
                subnet=subnet,
            )
            _ip("netns", "add", net.namespace)
            cleanup.track(net)
            try:
                net._wire(subnet.prefixlen)
            except BaseException:
                net.close()
                raise
        return net

    def _wire(self, prefixlen: int) -> None:
        """The veth pair, one end moved into the namespace, both addressed and up."""
        name = self.namespace
        _ip("-n", name, "link", "set", "lo", "up")
        _ip(
            "link",
            "add",
            self.host_link,
            "type",
            "veth",
            "peer",
            "name",
            self.vps_link,
            "netns",
            name,
        )
        # No IPv6 link-local addresses: the pair carries only the project's two IPv4 addresses.
        _ip("link", "set", "dev", self.host_link, "addrgenmode", "none")
        _ip("-n", name, "link", "set", "dev", self.vps_link, "addrgenmode", "none")
        _ip("addr", "add", f"{self.host_address}/{prefixlen}", "dev", self.host_link)
        _ip("link", "set", self.host_link, "up")
        _ip("-n", name, "addr", "add", f"{self.vps_address}/{prefixlen}", "dev", self.vps_link)
        _ip("-n", name, "link", "set", self.vps_link, "up")

    @property
    def netns_path(self) -> Path:
        """`/run/netns/<name>`: its inode is the namespace's (compare with /proc/PID/ns/net)."""
        return NETNS_DIR / self.namespace

    def exists(self) -> bool:
        """Whether the namespace is still listed by `ip netns list`."""
        return self.namespace in _namespaces()

    def link_exists(self) -> bool:
        """Whether the host end of the veth pair still exists."""
        return _ip("link", "show", "dev", self.host_link, check=False).returncode == 0

    def contains_pid(self, pid: int) -> bool:
        """Whether process `pid` runs inside this namespace."""
        try:
            return os.stat(f"/proc/{pid}/ns/net").st_ino == self.netns_path.stat().st_ino
        except OSError:
            return False

    def describe(self) -> str:
        return (
            f"VPS in network namespace {self.namespace} at {self.vps_address}; "
            f"DBaaS trusts only {self.vps_cidr}"
        )

    def _shutdown(self) -> None:
        """Delete the veth pair (both ends) and the namespace; best effort."""
        remove_namespace(self.namespace, self.host_link)

    def leftovers(self) -> list[Leftover]:
        """The namespace and its veth pair."""
        return [
            Leftover(
                what=f"network namespace {self.namespace}",
                namespace=self.namespace,
                link=self.host_link,
            )
        ]

    def _detach(self) -> None:
        """Mark it kept, so that no `remove_stale_namespaces` takes it once this process exits."""
        KEPT_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        (KEPT_DIR / self.namespace).write_text(f"detached by pid {os.getpid()}\n")


def vps_network() -> Network:
    """A VpsNamespace where the machine allows it, else Loopback saying why; never raises for
    "not possible"."""
    try:
        return VpsNamespace.create()
    except NamespaceUnavailable as err:
        return Loopback(str(err))
