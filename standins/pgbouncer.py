"""A real PgBouncer (Debian's 1.18) in front of a stand-in PostgreSQL, run as the service user."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg.rows import dict_row

from standins import cleanup
from standins.cleanup import Leftover, StandIn, processes
from standins.postgres import PostgresServer
from standins.scram import new_password
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

PGBOUNCER = "/usr/sbin/pgbouncer"
ADMIN_USER = "pgbouncer_admin"
"""The admin-console user (in `admin_users`); it exists only in PgBouncer's auth_file."""
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
DEFAULT_IGNORED_STARTUP_PARAMETERS = ("extra_float_digits", "options")
LOOPBACK = "127.0.0.1"


class PgBouncerStartError(RuntimeError):
    """The stand-in PgBouncer could not be started."""


def _quote_auth(value: str) -> str:
    """A value quoted for PgBouncer's auth_file (`"` doubled)."""
    return '"' + value.replace('"', '""') + '"'


class PgBouncer(StandIn):
    """A running PgBouncer on 127.0.0.1 pooling databases of one PostgresServer.

    Clients authenticate with SCRAM-SHA-256 against an auth_file holding the users' passwords;
    PgBouncer logs in to the server as the same user with the same password, over TLS
    (verify-ca against the server's CA) when the server has a certificate.

    With `hba_addresses`, clients are admitted by an `auth_hba_file` (`auth_type = hba`): TCP
    only from those addresses (`hostssl` when TLS is required), and the admin console only over
    PgBouncer's Unix socket (which `show`/`reload` then use).
    """

    host: str
    port: int
    log_path: Path
    base_dir: Path
    server: PostgresServer
    pool_mode: str
    pool_size: int
    admin_user: str
    admin_password: str
    hba_addresses: tuple[str, ...] | None
    server_via_socket: bool

    def __init__(
        self,
        *,
        server: PostgresServer,
        base_dir: Path,
        port: int,
        databases: Mapping[str, str],
        users: Mapping[str, str],
        pool_mode: str,
        pool_size: int,
        tls: ServerCert | None,
        require_tls: bool,
        server_tls: bool,
        ignore_startup_parameters: Sequence[str],
        host: str = LOOPBACK,
        hba_addresses: Sequence[str] | None = None,
        server_via_socket: bool = False,
    ) -> None:
        """Describe a PgBouncer laid out in `base_dir`; `start()` is what runs one."""
        self.host = host
        self.port = port
        self.server = server
        self.base_dir = base_dir
        self.log_path = base_dir / "pgbouncer.log"
        self.pool_mode = pool_mode
        self.pool_size = pool_size
        self.admin_user = ADMIN_USER
        self.admin_password = new_password()
        self.tls = tls
        self.require_tls = require_tls
        self.server_tls = server_tls
        self.ignore_startup_parameters = tuple(ignore_startup_parameters)
        self.hba_addresses = tuple(hba_addresses) if hba_addresses is not None else None
        self.server_via_socket = server_via_socket
        self._databases = dict(databases)
        self._users = dict(users)
        self._config_path = base_dir / "pgbouncer.ini"
        self._auth_path = base_dir / "userlist.txt"
        self._hba_path = base_dir / "pgbouncer_hba.conf"
        self._pid_path = base_dir / "pgbouncer.pid"
        self._socket_dir = base_dir / "run"
        self._process: subprocess.Popen[bytes] | None = None

    # ----- lifecycle -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        server: PostgresServer,
        databases: Mapping[str, str],
        users: Mapping[str, str],
        pool_mode: str = "transaction",
        pool_size: int = 15,
        tls: ServerCert | None = None,
        require_tls: bool = True,
        server_tls: bool = True,
        port: int | None = None,
        ignore_startup_parameters: Sequence[str] = DEFAULT_IGNORED_STARTUP_PARAMETERS,
        host: str = LOOPBACK,
        hba_addresses: Sequence[str] | None = None,
        server_via_socket: bool = False,
    ) -> PgBouncer:
        """Start PgBouncer for `databases` (alias -> database on `server`) and `users`.

        With `tls`, clients must use TLS when `require_tls` (else TLS is allowed). With
        `server_tls` and a server certificate, PgBouncer verifies the server against its CA.

        `host` is the address `url()` names; PgBouncer listens there and on 127.0.0.1.
        `hba_addresses` (CIDRs) switch to `auth_type = hba` admitting TCP clients only from
        those. `server_via_socket` makes PgBouncer reach the server over its Unix socket (no
        TCP source address for the server's pg_hba to admit; no TLS on that local hop).
        """
        if pool_mode not in {"session", "transaction", "statement"}:
            raise ValueError(f"unknown PgBouncer pool_mode {pool_mode!r}")
        if hba_addresses is not None and not hba_addresses:
            raise ValueError("hba_addresses must name at least one address (or be None)")
        if require_tls and tls is None:
            raise ValueError("require_tls=True needs a certificate (tls=...)")
        if not Path(PGBOUNCER).exists():
            raise PgBouncerStartError(
                f"PgBouncer missing at {PGBOUNCER}: install the Debian package pgbouncer"
            )
        bouncer = cls(
            server=server,
            base_dir=make_base_dir("handled-standins-pgbouncer-"),
            port=port if port is not None else free_port(),
            databases=databases,
            users=users,
            pool_mode=pool_mode,
            pool_size=pool_size,
            tls=tls,
            require_tls=require_tls,
            server_tls=server_tls,
            ignore_startup_parameters=ignore_startup_parameters,
            host=host,
            hba_addresses=hba_addresses,
            server_via_socket=server_via_socket,
        )
        cleanup.track(bouncer)
        try:
            bouncer._socket_dir.mkdir(mode=0o700)
            chown_to_service_user(bouncer._socket_dir)
            launch_on_free_port(
                bouncer,
                bouncer._launch,
                PgBouncerStartError,
                port_fixed=port is not None,
            )
        except BaseException:
            bouncer.stop()
            raise
        return bouncer

    def _config_text(self) -> str:
        """pgbouncer.ini for the current databases, users and TLS settings."""
        server = self.server
        server_host = str(server.socket_dir) if self.server_via_socket else server.host
        databases = [
            f"{alias} = host={server_host} port={server.port} dbname={dbname}"
            for alias, dbname in self._databases.items()
        ]
        settings: dict[str, str] = {
            "listen_addr": ",".join(dict.fromkeys([self.host, LOOPBACK])),
            "listen_port": str(self.port),
            "unix_socket_dir": str(self._socket_dir),
            "pidfile": str(self._pid_path),
            "auth_type": "scram-sha-256",
            "auth_file": str(self._auth_path),
            "admin_users": self.admin_user,
            "stats_users": self.admin_user,
            "pool_mode": self.pool_mode,
            "default_pool_size": str(self.pool_size),
            "max_client_conn": "500",
            "ignore_startup_parameters": ",".join(self.ignore_startup_parameters),
            "server_reset_query": "DISCARD ALL",
            "server_login_retry": "1",
            "log_connections": "0",
            "log_disconnections": "0",
        }
        if self.hba_addresses is not None:
            settings["auth_type"] = "hba"
            settings["auth_hba_file"] = str(self._hba_path)
        if self.tls is not None:
            settings["client_tls_sslmode"] = "require" if self.require_tls else "allow"
            settings["client_tls_cert_file"] = str(self.tls.cert_path)
            settings["client_tls_key_file"] = str(self.tls.key_path)
            settings["client_tls_ca_file"] = str(self.tls.ca_path)
        else:
            settings["client_tls_sslmode"] = "disable"
        if self.server_tls and server.tls is not None:
            settings["server_tls_sslmode"] = "verify-ca"
            settings["server_tls_ca_file"] = str(server.tls.ca_path)
        else:
            settings["server_tls_sslmode"] = "disable"
        lines = ["[databases]", *databases, "", "[pgbouncer]"]
        lines += [f"{key} = {value}" for key, value in settings.items()]
        return "\n".join(lines) + "\n"

    def _hba_text(self) -> str:
        """The auth_hba_file: the admin console over the Unix socket, clients from the list."""
        host_type = "hostssl" if self.tls is not None and self.require_tls else "host"
        lines = [f"local pgbouncer {self.admin_user} scram-sha-256"]
        lines += [
            f"{host_type} all all {address} scram-sha-256" for address in self.hba_addresses or ()
        ]
        return "\n".join(lines) + "\n"

    def _write_files(self) -> None:
        """Write pgbouncer.ini and the auth_file (0600: it holds passwords), and the hba file."""
        users = {**self._users, self.admin_user: self.admin_password}
        auth = "".join(f"{_quote_auth(u)} {_quote_auth(p)}\n" for u, p in users.items())
        write_private_file(self._auth_path, auth)
        if self.hba_addresses is not None:
            write_private_file(self._hba_path, self._hba_text())
        write_private_file(self._config_path, self._config_text())

    def _launch(self) -> None:
        """Write the files for the current port, run pgbouncer in the foreground as the
        service user; wait until it accepts TCP."""
        self._write_files()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                as_service_user([PGBOUNCER, str(self._config_path)]),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        chown_to_service_user(self.log_path)
        problem = wait_started(self._process, self._accepts_tcp, timeout=START_TIMEOUT)
        if problem is not None:
            if self._process.poll() is not None:
                self._process = None
            raise PgBouncerStartError(self._failure(problem))

    def _accepts_tcp(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return self._pid_path.exists()
        except OSError:
            return False

    def _failure(self, problem: str) -> str:
        """A one-line problem statement followed by the PgBouncer log tail."""
        return (
            f"PgBouncer on port {self.port} {problem}; "
            f"log {self.log_path}:\n{log_tail(self.log_path)}"
        )

    @property
    def pid(self) -> int:
        """PgBouncer's process id (from its pidfile)."""
        return int(self._pid_path.read_text(encoding="ascii").strip())

    def leftovers(self) -> list[Leftover]:
        """PgBouncer (immediate shutdown: SIGTERM) and its base dir (config, auth file)."""
        pids: list[int] = []
        with contextlib.suppress(OSError, ValueError):
            pids.append(self.pid)
        return [
            Leftover(
                what=f"PgBouncer on {self.host}:{self.port}",
                processes=processes(pids),
                paths=(str(self.base_dir),),
            )
        ]

    def _shutdown(self) -> None:
        """Immediate shutdown (SIGTERM), then remove the base dir."""
        with contextlib.suppress(OSError, ValueError):
            os.kill(self.pid, signal.SIGTERM)
        if self._process is not None:
            try:
                self._process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError, ValueError):
                    os.kill(self.pid, signal.SIGKILL)
                self._process.kill()
                self._process.wait(timeout=STOP_TIMEOUT)
            self._process = None
        remove_dir(self.base_dir)

    def __repr__(self) -> str:
        return f"PgBouncer(port={self.port}, pool_mode={self.pool_mode}, server={self.server!r})"

    # ----- clients and the admin console -----------------------------------------------------

    def url(self, alias: str, *, user: str, password: str, **params: str) -> str:
        """`postgresql://user:pw@host:port/alias?params`, percent-encoded."""
        auth = quote(user, safe="") + ":" + quote(password, safe="")
        query = ("?" + urlencode(params, quote_via=quote, safe="/")) if params else ""
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(alias, safe='')}{query}"

    def _admin_connect(self) -> psycopg.Connection[dict[str, Any]]:
        if self.hba_addresses is not None:  # the hba file admits the console on the socket only
            return psycopg.connect(
                host=str(self._socket_dir),
                port=self.port,
                dbname="pgbouncer",
                user=self.admin_user,
                password=self.admin_password,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=10,
            )
        params = {"sslmode": "require"} if self.tls is not None else {}
        url = self.url("pgbouncer", user=self.admin_user, password=self.admin_password, **params)
        return psycopg.connect(url, autocommit=True, row_factory=dict_row, connect_timeout=10)

    def show(self, what: str) -> list[dict[str, Any]]:
        """Rows of `SHOW <what>` (POOLS, CONFIG, DATABASES, ...) from the admin console."""
        if not what.replace("_", "").isalpha():
            raise ValueError(f"not a PgBouncer SHOW topic: {what!r}")
        with self._admin_connect() as conn:
            return conn.cursor().execute(f"SHOW {what.upper()}", prepare=False).fetchall()

    def config(self) -> dict[str, str]:
        """`SHOW CONFIG` as a key -> value mapping."""
        return {str(row["key"]): str(row["value"]) for row in self.show("CONFIG")}

    def reload(self) -> None:
        """Rewrite the config and auth files and tell PgBouncer to RELOAD them."""
        self._write_files()
        with self._admin_connect() as conn:
            conn.execute("RELOAD", prepare=False)

    def add_database(self, alias: str, dbname: str) -> None:
        """Add (or repoint) a pool alias for a database on the server, then reload."""
        self._databases[alias] = dbname
        self.reload()

    def add_user(self, name: str, password: str) -> None:
        """Add (or change) a user in the auth_file, then reload."""
        self._users[name] = password
        self.reload()
