"""Shared fixtures: the stand-in servers (started lazily, stopped at session end) and fresh dbs.

- `source_pg`: PostgreSQL 15, no TLS (the VPS's old database server).
- `data_pg`: PostgreSQL 17, no TLS (the VPS's new local DATA server).
- `dbaas`: the DigitalOcean managed PostgreSQL stand-in (TLS-only PG17 + PgBouncer).
- `make_db`: factory for a fresh, uniquely named database on any of them, dropped at teardown.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import pytest

# The repository root must be importable (`standins`, `dbsplit`) however pytest is launched.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from standins import cleanup  # noqa: E402
from standins.postgres import PostgresServer  # noqa: E402

if TYPE_CHECKING:
    from standins.dbaas import Dbaas

MakeDb = Callable[..., str]
"""`make_db(server, owner=None) -> str`: see the `make_db` fixture."""


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Treat SIGTERM like Ctrl-C: pytest stops the session and runs the fixture finalizers."""
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    """Stop the stand-ins on SIGTERM too (SIGINT already unwinds through the finalizers)."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt_on_sigterm)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Last resort: stop anything a crashed fixture left running."""
    cleanup.stop_all()


@pytest.fixture(scope="session")
def source_pg() -> Iterator[PostgresServer]:
    """The VPS's old PostgreSQL 15 server (no TLS), as the superuser `postgres`."""
    server = PostgresServer.start(version=15, name="source")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def data_pg() -> Iterator[PostgresServer]:
    """The VPS's new local PostgreSQL 17 DATA server (no TLS)."""
    server = PostgresServer.start(version=17, name="data")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dbaas() -> Iterator[Dbaas]:
    """The DigitalOcean managed PostgreSQL stand-in: TLS-only PG17, `doadmin`, a PgBouncer pool."""
    from standins.dbaas import Dbaas

    service = Dbaas.start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def make_db() -> Iterator[MakeDb]:
    """Factory: `make_db(server, owner=None) -> name` creates a fresh database, dropped after.

    `server` is a PostgresServer or a Dbaas; on a Dbaas the owner defaults to its admin user
    (`doadmin`), as on the real managed cluster.
    """
    created: list[tuple[PostgresServer, str]] = []

    def make(server: PostgresServer | Dbaas, owner: str | None = None) -> str:
        if isinstance(server, PostgresServer):
            pg = server
        else:
            pg = server.server
            owner = owner if owner is not None else server.admin_user
        name = pg.fresh_database(owner=owner)
        created.append((pg, name))
        return name

    yield make
    for pg, name in reversed(created):
        pg.drop_database(name)
