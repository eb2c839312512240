"""Fixtures for the VPS stand-ins: the sshd host, the S3 server, the whole VPS with the app.

All are session-scoped. Only one `SshHost` per deploy user can run at a time (it owns the
user's home and pm2 daemon), and the VPS databases and roles are named per server: these
fixtures use their own user (`handled-standin`) and names, so the deploy's tests can run a
default `Vps` (user `handled-deploy`, database `handled`) in the same session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from standins.host import Vps
from standins.postgres import PostgresServer
from standins.s3 import S3Server
from standins.sshd import SshHost

DEPLOY_USER = "handled-standin"


@pytest.fixture(scope="session")
def ssh_host() -> Iterator[SshHost]:
    """A real sshd on loopback logging in the deploy user `handled-standin` by key."""
    with SshHost.start(user=DEPLOY_USER) as host:
        yield host


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 API server (the DigitalOcean Spaces stand-in)."""
    with S3Server.start() as server:
        yield server


@pytest.fixture(scope="session")
def vps(ssh_host: SshHost, source_pg: PostgresServer, data_pg: PostgresServer) -> Iterator[Vps]:
    """The VPS: the old database on PG15, an empty DATA database on PG17, the app (single mode)."""
    with Vps.start(
        ssh=ssh_host,
        source=source_pg,
        data=data_pg,
        source_db="handled_st",
        source_user="handled_st_user",
        data_db="handled_st_data",
        data_user="handled_st_data_user",
    ) as machine:
        yield machine
