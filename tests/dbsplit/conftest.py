"""Fixtures for dbsplit's end-to-end tests: the edge-case source and fresh targets.

- `edge_source`: one PG15 database loaded with `edge_cases.sql` for the whole session, frozen
  (``dbsplit migrate`` requires it; tests read it as the superuser, who may still connect;
  they never write to it, the freeze tests make their own).
- `split_env`: the source plus a fresh PRIMARY (DBaaS stand-in, owned by the non-superuser
  `doadmin`, TLS verify-full) and a fresh DATA (PG17, owned by a non-superuser), with helpers
  to run `python -m dbsplit` as the deploy would (URLs in the environment, never in argv).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from dbsplit.freeze import freeze
from dbsplit.urls import parse
from standins.dbaas import Dbaas
from standins.postgres import PostgresServer
from tests.dbsplit.helpers import DATA_OWNER, DATA_OWNER_PASSWORD, EDGE_SQL, SplitEnv


@pytest.fixture(scope="session")
def edge_source(source_pg: PostgresServer) -> Iterator[str]:
    """The name of the edge-case source database on the PG15 server."""
    name = source_pg.fresh_database(prefix="edge")
    with source_pg.connect(name) as conn:
        conn.execute(EDGE_SQL.read_text().encode())
    freeze(parse(source_pg.url(name)))
    yield name
    source_pg.drop_database(name)


@pytest.fixture(scope="session")
def data_owner(data_pg: PostgresServer) -> str:
    data_pg.create_role(DATA_OWNER, DATA_OWNER_PASSWORD)
    return DATA_OWNER


@pytest.fixture
def split_env(
    source_pg: PostgresServer,
    dbaas: Dbaas,
    data_pg: PostgresServer,
    make_db: Callable[..., str],
    edge_source: str,
    data_owner: str,
) -> SplitEnv:
    return SplitEnv(
        source_pg=source_pg,
        dbaas=dbaas,
        data_pg=data_pg,
        source=edge_source,
        primary=make_db(dbaas),
        data=make_db(data_pg, owner=data_owner),
    )
