"""The DigitalOcean managed PostgreSQL stand-in: a TLS-only PG17, `doadmin`, a PgBouncer pool."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from standins import cleanup
from standins.cleanup import Leftover, StandIn
from standins.pgbouncer import PgBouncer
from standins.postgres import PostgresServer
from standins.scram import new_password
from standins.system import make_base_dir, remove_dir
from standins.tls import make_ca

if TYPE_CHECKING:
    from standins.netns import Network

DEFAULT_DB = "defaultdb"
"""The database every DO cluster has, owned by `doadmin`."""


@dataclass
class Dbaas(StandIn):
    """A managed-PostgreSQL look-alike: direct TLS connections and a transaction-mode pool.

    - `server`: PostgreSQL 17 accepting only `hostssl` connections, with a certificate from
      its own CA (`ca_path`), valid for `localhost` and `127.0.0.1`.
    - `admin_user` (`doadmin`): LOGIN CREATEDB CREATEROLE, not a superuser; owns `app_db` and
      `defaultdb`.
    - `bouncer`: PgBouncer in transaction mode, pool `pool_name` -> `app_db`, TLS required.

    The superuser (`server.superuser`) stays available to tests for setup and inspection.

    With `network=` (a `standins.netns.Network`), both listen on `network.host_address` (and
    127.0.0.1) and BOTH admit TCP clients only from `network.vps_address/32`, as DigitalOcean's
    trusted sources do: PostgreSQL with `hostssl` lines for that address only, PgBouncer with
    `auth_type = hba`. PgBouncer then reaches PostgreSQL over its Unix socket (when the VPS has
    its own namespace), and setup (superuser, PgBouncer's admin console) uses Unix sockets.
    """

    server: PostgresServer
    bouncer: PgBouncer
    ca_path: Path
    admin_user: str
    admin_password: str = field(repr=False)
    app_db: str
    pool_name: str
    base_dir: Path
    network: Network | None = None

    @classmethod
    def start(
        cls,
        *,
        app_db: str = "handled",
        admin_user: str = "doadmin",
        pool_name: str = "handled-pool",
        pool_size: int = 15,
        hba_addresses: Sequence[str] = ("127.0.0.1/32",),
        port: int | None = None,
        pool_port: int | None = None,
        network: Network | None = None,
    ) -> Dbaas:
        """Start the cluster, create `admin_user`, `defaultdb` and `app_db`, then the pool.

        `hba_addresses` play DO's trusted sources; `port`/`pool_port` fix the direct and pool
        ports (free ones are picked by default). A `network` replaces `hba_addresses` with
        the VPS's address alone and listens on its host address (see the class doc).
        """
        host = "127.0.0.1"
        ips: tuple[str, ...] = ("127.0.0.1",)
        bouncer_hba: tuple[str, ...] | None = None
        if network is not None:
            host = network.host_address
            ips = tuple(dict.fromkeys([*ips, host]))
            hba_addresses = bouncer_hba = (network.vps_cidr,)
        base_dir = make_base_dir("handled-standins-dbaas-")
        server: PostgresServer | None = None
        try:
            ca = make_ca(base_dir / "ca", common_name="handled stand-in DBaaS CA")
            cert = ca.issue_server_cert(base_dir / "server", ips=ips)
            server = PostgresServer.start(
                version=17,
                name="dbaas",
                tls=cert,
                require_tls=True,
                hba_addresses=hba_addresses,
                port=port,
                host=host,
            )
            admin_password = new_password()
            server.create_role(admin_user, admin_password, createdb=True, createrole=True)
            server.create_database(DEFAULT_DB, owner=admin_user)
            server.create_database(app_db, owner=admin_user)
            bouncer = PgBouncer.start(
                server=server,
                databases={pool_name: app_db},
                users={admin_user: admin_password},
                pool_mode="transaction",
                pool_size=pool_size,
                tls=cert,
                require_tls=True,
                server_tls=True,
                port=pool_port,
                host=host,
                hba_addresses=bouncer_hba,
                server_via_socket=network is not None and network.namespace is not None,
            )
        except BaseException:
            if server is not None:
                server.stop()
            remove_dir(base_dir)
            raise
        service = cls(
            server=server,
            bouncer=bouncer,
            ca_path=ca.cert_path,
            admin_user=admin_user,
            admin_password=admin_password,
            app_db=app_db,
            pool_name=pool_name,
            base_dir=base_dir,
            network=network,
        )
        cleanup.track(service)
        return service

    def direct_url(
        self,
        dbname: str | None = None,
        *,
        user: str | None = None,
        password: str | None = None,
        sslmode: str = "verify-full",
    ) -> str:
        """The direct (port "25060") URL: `app_db` as `doadmin` by default, TLS against the CA."""
        if user is None:
            user = self.admin_user
            if password is None:
                password = self.admin_password
        return self.server.url(
            dbname or self.app_db,
            user=user,
            password=password,
            sslmode=sslmode,
            sslrootcert=str(self.ca_path),
        )

    def pool_url(
        self,
        *,
        user: str | None = None,
        password: str | None = None,
        pool: str | None = None,
        prisma: bool = True,
    ) -> str:
        """The pooled (port "25061") URL: database = pool name, verify-full against the CA.

        With `prisma=True` (the app's form) it ends in `pgbouncer=true`, which libpq rejects:
        pass `prisma=False` for a psycopg/libpq URL.
        """
        if user is None:
            user = self.admin_user
            if password is None:
                password = self.admin_password
        if password is None:
            raise ValueError(f"pool_url for user {user!r} needs its password")
        params = {"sslmode": "verify-full", "sslrootcert": str(self.ca_path)}
        if prisma:
            params["pgbouncer"] = "true"
        return self.bouncer.url(pool or self.pool_name, user=user, password=password, **params)

    def connect(
        self, dbname: str | None = None, *, pooled: bool = False
    ) -> psycopg.Connection[tuple[Any, ...]]:
        """An autocommit connection as `doadmin` (verify-full TLS), direct or through the pool.

        Pooled connections disable psycopg's server-side prepared statements, which PgBouncer
        1.18 cannot carry across transactions. With a namespaced `network` the host is not a
        trusted source: these are refused (connect from the VPS's namespace instead).
        """
        if pooled:
            if dbname is not None:
                raise ValueError("pooled connections reach the pool's database; pass no dbname")
            return psycopg.connect(
                self.pool_url(prisma=False), autocommit=True, prepare_threshold=None
            )
        return psycopg.connect(self.direct_url(dbname), autocommit=True)

    def add_database(self, name: str) -> None:
        """Create a fresh database owned by `doadmin` (a clean PRIMARY for one test)."""
        self.server.create_database(name, owner=self.admin_user)

    def add_pool(self, pool_name: str, dbname: str) -> None:
        """Add a transaction-mode pool `pool_name` -> `dbname` (as DO's connection pools do)."""
        self.bouncer.add_database(pool_name, dbname)

    def add_user(self, name: str, password: str) -> None:
        """Create a login role (like DO's "add user") and let it use the pools."""
        self.server.create_role(name, password)
        self.bouncer.add_user(name, password)

    def leftovers(self) -> list[Leftover]:
        """PgBouncer, the server (every database in its data dir), the certificates' dir."""
        own = Leftover(what="DBaaS certificates", paths=(str(self.base_dir),))
        return [*self.bouncer.leftovers(), *self.server.leftovers(), own]

    def _detach(self) -> None:
        self.bouncer.detach()
        self.server.detach()

    def _shutdown(self) -> None:
        """Stop PgBouncer, then the server; remove the certificates."""
        self.bouncer.stop()
        self.server.stop()
        remove_dir(self.base_dir)
