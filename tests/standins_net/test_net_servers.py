"""PostgreSQL and sshd inside the VPS namespace: reachable at the VPS's address, running there."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator

import psycopg
import pytest

from standins.netns import VpsNamespace
from standins.postgres import PostgresServer
from standins.sshd import SshHost
from standins.system import process_owner, server_user
from tests.standins_net.conftest import NET_USER


@pytest.fixture(scope="module")
def pg_ns(net: VpsNamespace) -> Iterator[PostgresServer]:
    with PostgresServer.start(version=15, name="netns", network=net) as server:
        yield server


@pytest.fixture(scope="module")
def ssh_ns(net: VpsNamespace) -> Iterator[SshHost]:
    with SshHost.start(user=NET_USER, network=net) as host:
        yield host


def test_postgres_runs_in_the_namespace_as_the_service_user(
    pg_ns: PostgresServer, net: VpsNamespace
) -> None:
    assert net.contains_pid(pg_ns.pid)
    assert not net.contains_pid(1)
    assert process_owner(pg_ns.pid) == server_user()


def test_postgres_is_reachable_from_the_host_at_the_vps_address(
    pg_ns: PostgresServer, net: VpsNamespace
) -> None:
    assert pg_ns.host == net.vps_address
    assert f"@{net.vps_address}:{pg_ns.port}/" in pg_ns.url()
    with psycopg.connect(pg_ns.url(), connect_timeout=5) as conn:
        row = conn.execute("SELECT host(inet_server_addr()), host(inet_client_addr())")
        assert row.fetchone() == (net.vps_address, net.host_address)
    with pg_ns.connect() as conn:  # setup: the Unix socket works across namespaces
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    # Nothing listens on the host's own loopback: the server's 127.0.0.1 is the namespace's.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", pg_ns.port), timeout=2).close()


def test_postgres_answers_the_namespace_loopback(pg_ns: PostgresServer, net: VpsNamespace) -> None:
    result = subprocess.run(
        [*net.prefix(), str(pg_ns.bin("pg_isready")), "-h", "127.0.0.1", "-p", str(pg_ns.port)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ssh_to_the_vps_address_lands_in_the_namespace(ssh_ns: SshHost, net: VpsNamespace) -> None:
    assert ssh_ns.host == net.vps_address
    assert ssh_ns.inventory_env()["HANDLED_VPS_HOST"] == net.vps_address
    assert ssh_ns.inventory_data()["ssh_hostname"] == net.vps_address
    result = ssh_ns.run("ip -o -4 addr show; whoami; echo $BIND_HOST", timeout=30)
    assert result.returncode == 0, result.stderr
    assert f"inet {net.vps_address}/30" in result.stdout
    assert "192.0.2." not in result.stdout  # the host's own interfaces are not there
    assert result.stdout.splitlines()[-2:] == [NET_USER, "0.0.0.0"]  # noqa: S104
    assert ssh_ns._process is not None
    assert net.contains_pid(ssh_ns._process.pid)
