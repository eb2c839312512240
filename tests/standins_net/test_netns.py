"""The network objects themselves: the namespace, the loopback fallback, cleanup, http_json."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from standins import netns
from standins.host import http_json
from standins.netns import Loopback, VpsNamespace, is_project_address, vps_network

ROOT = Path(__file__).resolve().parents[2]


def _namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def _links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def test_namespace_layout(net: VpsNamespace) -> None:
    name = net.namespace
    assert name.startswith(f"handled-vps-{os.getpid()}-")
    assert net.prefix() == ["ip", "netns", "exec", name]
    assert is_project_address(net.host_address)
    assert is_project_address(net.vps_address)
    assert net.subnet.endswith("/30")
    assert net.describe() == (
        f"VPS in network namespace {name} at {net.vps_address}; "
        f"DBaaS trusts only {net.vps_address}/32"
    )
    inside = subprocess.run(
        [*net.prefix(), "ip", "-o", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    assert "lo    inet 127.0.0.1/8" in inside
    addresses = [line.split()[3] for line in inside.splitlines() if " inet " in line]
    assert addresses == ["127.0.0.1/8", f"{net.vps_address}/30"]  # nothing else, no IPv6 LL
    # From the namespace, the host end is reachable and our source is the VPS's address.
    with socket.create_server((net.host_address, 0)) as server:
        port = server.getsockname()[1]
        client = subprocess.run(
            [*net.prefix(), sys.executable, "-c", _CONNECT, net.host_address, str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        conn, peer = server.accept()
        conn.close()
    assert client.stdout.strip() == net.vps_address, client.stderr
    assert peer[0] == net.vps_address


_CONNECT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as conn:
    print(conn.getsockname()[0])
"""


def test_loopback_fallback_object() -> None:
    with Loopback("testing") as net:
        assert net.prefix() == []
        assert net.host_address == net.vps_address == "127.0.0.1"
        assert net.namespace is None
        assert not net.isolated
        assert net.describe() == "fallback: loopback only (no network namespaces here: testing)"
    net.close()


def test_falls_back_without_ip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    net = vps_network()
    assert isinstance(net, Loopback)
    assert "`ip` (iproute2) is not on PATH" in net.describe()


def test_falls_back_when_netns_add_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "ip"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1 $2" = "netns add" ]; then\n'
        '  echo "mount --make-shared /run/netns failed: Operation not permitted" >&2; exit 1\n'
        "fi\n"
        "exit 0\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    ours = f"handled-vps-{os.getpid()}-"
    before = [name for name in _namespaces().split() if name.startswith(ours)]
    net = vps_network()
    assert isinstance(net, Loopback)
    assert "`ip netns add handled-vps-" in net.reason
    assert "Operation not permitted" in net.reason
    assert [name for name in _namespaces().split() if name.startswith(ours)] == before


def test_close_removes_namespace_and_veth() -> None:
    net = VpsNamespace.create()
    assert net.namespace in _namespaces()
    assert net.host_link in _links()
    assert net.exists()
    assert net.link_exists()
    net.close()
    net.close()
    assert net.namespace not in _namespaces()
    assert net.host_link not in _links()
    assert not net.exists()
    assert not net.link_exists()


def test_exit_without_close_leaves_nothing() -> None:
    script = "from standins.netns import vps_network; print(vps_network().namespace)"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    name = result.stdout.strip()
    assert name.startswith("handled-vps-")
    assert name not in _namespaces()
    assert f"hv{name.rsplit('-', 1)[1]}h" not in _links()


def test_stale_namespaces_of_dead_runs_are_removed() -> None:
    # pid_max itself is never a process id: a run that is certainly gone.
    dead_pid = int(Path("/proc/sys/kernel/pid_max").read_text())
    token = "deadbeef"
    stale = f"handled-vps-{dead_pid}-{token}"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    subprocess.run(
        ["ip", "link", "add", f"hv{token}h", "type", "veth", "peer", "name", f"hv{token}n",
         "netns", stale],
        check=True,
    )  # fmt: skip
    netns.remove_stale_namespaces()  # (another session's create() may have swept it first)
    assert stale not in _namespaces()
    assert f"hv{token}h" not in _links()
    with VpsNamespace.create() as fresh:  # create() does the same sweep first
        assert fresh.exists()


def test_http_json_accepts_only_loopback_and_project_addresses(net: VpsNamespace) -> None:
    closed = http_json(f"http://{net.vps_address}:9/api/health", timeout=2)
    assert closed.status == 0  # allowed, and nothing listens there
    for url in (
        "http://10.0.0.1:80/",
        "http://192.0.2.2:80/",
        "https://10.231.0.2:443/",
        f"http://x@{net.vps_address}:80/",
        "http://10.231.0.2/",
        "http://10.231.0.2.example.com:80/",
    ):
        with pytest.raises(ValueError, match="only calls loopback"):
            http_json(url)
