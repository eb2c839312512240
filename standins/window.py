"""The stand-in world of one maintenance window, and pyinfra run against it through its CLI.

Used by the deploy tests and by `make rehearse` (`rehearsal.run`).

`Window.start()` brings up (around given `source_pg`, `data_pg` and `dbaas` servers): the VPS
(`standins.host.Vps`: real sshd, deploy user, the fixture app healthy in single-DB mode on
`handled`), a fresh PRIMARY database with its own PgBouncer pool on the DBaaS stand-in, and a
moto S3 server with the backup bucket. `Window.stand_up()` starts those servers itself, all in
the VPS's network (`standins.netns`): source PG15 and DATA PG17 inside it, DBaaS trusting only
its address, S3 on the host end; `stop()` then stops them too. `run()` runs
`.venv/bin/pyinfra -y` as a subprocess with the secrets in its environment only, and returns
the captured output (`on_line` sees each line as it comes).

The deploy reads what the Pulumi stack would export (the CA's path on the VPS, the pool's size,
the bucket, PRIMARY's URLs, `AUTH_SECRET`) from a file holding exactly the JSON of
`pulumi stack output --json --show-secrets` (`HANDLED_STACK_OUTPUTS`, mode 0600, written by
`stack_outputs()`); the secrets Pulumi does not know come from the environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg import sql

from standins.cleanup import Leftover
from standins.dbaas import Dbaas
from standins.host import SourceSeeder, Vps
from standins.netns import Network
from standins.postgres import PostgresServer
from standins.s3 import S3Server

REPO = Path(__file__).resolve().parents[1]
PYINFRA = REPO / ".venv" / "bin" / "pyinfra"
BUCKET = "handled-rehearsal-pg-backups"


@dataclass
class Run:
    """One pyinfra run: exit code, combined output, wall time."""

    returncode: int
    output: str
    seconds: float

    def __str__(self) -> str:
        tail = "\n".join(self.output.splitlines()[-60:])
        return f"pyinfra exited {self.returncode} after {self.seconds:.1f}s:\n{tail}"


@dataclass
class Window:
    """Everything one window touches; `secret_values()` lists what no output may contain."""

    vps: Vps
    dbaas: Dbaas
    s3: S3Server
    data_pg: PostgresServer
    primary_db: str
    pool_name: str
    auth_secret: str = field(repr=False)
    report_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    #: the stack's `prismaPgbouncer` (Prisma's `pgbouncer=` in PRIMARY_DATABASE_URL)
    prisma_pgbouncer: bool = True
    extra_outputs: dict[str, Any] = field(default_factory=dict)
    """More stack outputs (e.g. the notifier's ``notifySlackWebhook``)."""
    network: Network | None = None
    owned: list[Any] = field(default_factory=list, repr=False)
    detached: bool = field(default=False, repr=False)

    @classmethod
    def start(
        cls,
        *,
        source_pg: PostgresServer,
        data_pg: PostgresServer,
        dbaas: Dbaas,
        report_dir: Path,
        network: Network | None = None,
        seed: SourceSeeder | None = None,
    ) -> Window:
        """Start the VPS and S3, and give the window a fresh PRIMARY database and pool.

        With `network`, the VPS's sshd runs in it and S3 listens on its host end (the servers
        passed in must have been started with the same network); `seed` fills `handled`.
        """
        s3_host = network.host_address if network is not None else "127.0.0.1"
        s3 = S3Server.start(host=s3_host)
        try:
            s3.create_bucket(BUCKET)
            vps = Vps.start(source=source_pg, data=data_pg, network=network, seed=seed)
        except BaseException:
            s3.stop()
            raise
        primary_db = f"handled_{secrets.token_hex(4)}"
        pool_name = f"{primary_db}-pool"
        dbaas.add_database(primary_db)
        dbaas.add_pool(pool_name, primary_db)
        window = cls(
            vps=vps,
            dbaas=dbaas,
            s3=s3,
            data_pg=data_pg,
            primary_db=primary_db,
            pool_name=pool_name,
            auth_secret=secrets.token_urlsafe(32),
            report_dir=report_dir,
            network=network,
        )
        window.drop_data_database()
        return window

    @classmethod
    def stand_up(
        cls,
        *,
        report_dir: Path,
        network: Network | None = None,
        seed: SourceSeeder | None = None,
        on_step: Callable[[str], Any] | None = None,
    ) -> Window:
        """Start every server of the window (source PG15 and DATA PG17 in the VPS's network,
        DBaaS trusting only the VPS), then `start()`; `stop()` stops them all.

        `on_step(name)` is entered as a context manager around each server's start (for
        timing); by default nothing is timed.
        """
        timed = on_step or (lambda _name: contextlib.nullcontext())
        owned: list[Any] = []
        try:
            with timed("start source PostgreSQL 15 (VPS)"):
                source = PostgresServer.start(version=15, name="source", network=network)
                owned.append(source)
            with timed("start DATA PostgreSQL 17 (VPS)"):
                data = PostgresServer.start(version=17, name="data", network=network)
                owned.append(data)
            with timed("start DBaaS (PG17 TLS + PgBouncer pool 15)"):
                dbaas = Dbaas.start(network=network)
                owned.append(dbaas)
            with timed("start the VPS (sshd, handled, app in single mode) and Spaces"):
                window = cls.start(
                    source_pg=source,
                    data_pg=data,
                    dbaas=dbaas,
                    report_dir=report_dir,
                    network=network,
                    seed=seed,
                )
        except BaseException:
            for thing in reversed(owned):
                with contextlib.suppress(Exception):
                    thing.stop()
            raise
        window.owned = owned
        return window

    def drop_data_database(self) -> None:
        """Remove `handled_data` and its role, so the window's step 4 creates them."""
        self.data_pg.drop_database(self.vps.data_db)
        self.data_pg.execute(
            sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(self.vps.data_user))
        )

    def stop(self) -> None:
        """Stop the VPS and S3; drop the PRIMARY database; stop the servers it started.

        Does nothing once detached."""
        if self.detached:
            return
        try:
            self.vps.stop()
        finally:
            self.s3.stop()
            with contextlib.suppress(Exception):
                self.dbaas.server.drop_database(self.primary_db)
            for thing in reversed(self.owned):
                with contextlib.suppress(Exception):
                    thing.stop()
            self.owned = []

    def leftovers(self) -> list[Leftover]:
        """What `stop()` would stop, as `Leftover`s (the network is not the window's)."""
        things = [self.vps, self.s3, *reversed(self.owned)]
        return [item for thing in things for item in thing.leftovers()]

    def detach(self) -> list[Leftover]:
        """Leave every server running after this process exits (`StandIn.detach`); returns
        what a later process needs to stop them (`standins.leftovers.sweep`). Only a window
        that started its servers (`stand_up`) can be detached: the PRIMARY database lives in
        its DBaaS cluster's data dir and goes with it. The network is detached by its owner."""
        if not self.owned:
            raise ValueError("only a window made by stand_up() (owning its servers) detaches")
        things = [self.vps, self.s3, *reversed(self.owned)]
        leftovers = [item for thing in things for item in thing.detach()]
        self.detached = True
        return leftovers

    # ----- the deploy's environment ------------------------------------------------------------

    def secret_env(self) -> dict[str, str]:
        """The secrets the stack does not export, as the operator would export them."""
        return {
            "OLD_DATABASE_URL": self.vps.source_url(),
            "SOURCE_ADMIN_URL": self.vps.source.url(self.vps.source_db),
            "DATA_DATABASE_URL": self.vps.data_url(),
            "DATA_ADMIN_URL": self.data_pg.url(),
            "SPACES_ACCESS_KEY_ID": self.s3.access_key,
            "SPACES_SECRET_ACCESS_KEY": self.s3.secret_key,
            "SMOKE_PASSWORD": self.vps.smoke_password,
        }

    def stack_outputs(self) -> Path:
        """The stack's outputs for these stand-ins, as `pulumi stack output --json
        --show-secrets` prints them, in a 0600 file (rewritten on each call)."""
        outputs = {
            "caCertPath": str(self.vps.app.env_path.parent / "certs" / "primary-ca.crt"),
            "caCertificate": self.dbaas.ca_path.read_text(encoding="ascii"),
            "poolName": self.pool_name,
            "poolSize": self.dbaas.bouncer.pool_size,
            "prismaPgbouncer": self.prisma_pgbouncer,
            "primaryDatabaseUrl": self.dbaas.pool_url(pool=self.pool_name, prisma=False)
            + f"&pgbouncer={str(self.prisma_pgbouncer).lower()}",
            "primaryDirectUrl": self.dbaas.direct_url(self.primary_db),
            "backupBucketName": BUCKET,
            "backupBucketEndpoint": self.s3.endpoint_url,
            "backupBucketRegion": "nyc3",
            "authSecret": self.auth_secret,
            **self.extra_outputs,
        }
        path = self.report_dir / ".stack-outputs.json"
        self.report_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(outputs, handle, indent=2)
        return path

    def secret_values(self) -> list[str]:
        """Every password and secret of the window (none may appear in output, ps or logs)."""
        return [
            self.vps.source_password,
            self.vps.data_password,
            self.dbaas.admin_password,
            self.data_pg.superuser_password,
            self.auth_secret,
            self.vps.auth_secret,
            self.s3.secret_key,
            self.vps.smoke_password,
        ]

    def env(self) -> dict[str, str]:
        """The whole environment of a pyinfra run."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_"))}
        return {**base, **self.own_env()}

    def own_env(self) -> dict[str, str]:
        """What a pyinfra run needs on top of an ordinary shell's environment: the secrets,
        the `HANDLED_*` settings, `extra_env`."""
        ssh = self.vps.ssh
        return {
            **self.secret_env(),
            "HANDLED_VPS_HOST": ssh.host,
            "HANDLED_VPS_PORT": str(ssh.port),
            "HANDLED_VPS_USER": ssh.user,
            "HANDLED_VPS_KEY": str(ssh.client_key_path),
            "HANDLED_VPS_KNOWN_HOSTS": str(ssh.known_hosts_path),
            "HANDLED_APP_DIR": str(self.vps.app.app_dir),
            "HANDLED_HEALTH_URL": self.vps.app.health_url,
            "HANDLED_API_URL": self.vps.app.api_url,
            "HANDLED_WEB_URL": self.vps.app.web_url,
            "HANDLED_STACK_OUTPUTS": str(self.stack_outputs()),
            "HANDLED_REPORT_DIR": str(self.report_dir),
            "PYINFRA_PROGRESS": "off",
            **self.extra_env,
        }

    def write_env_file(self, path: Path, extra: Mapping[str, str] | None = None) -> Path:
        """`own_env()` (and `extra`) as `export KEY='value'` lines in a new file of mode 0600,
        for an operator's `. path` before running pyinfra by hand."""
        values = {**self.own_env(), **(extra or {})}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.writelines(f"export {k}={shlex.quote(v)}\n" for k, v in values.items())
        path.chmod(0o600)
        return path

    def run(
        self,
        deploy: str,
        *flags: str,
        timeout: float = 420.0,
        on_line: Callable[[str], None] | None = None,
        kill_at: str | None = None,
        **env: str,
    ) -> Run:
        """`pyinfra -y inventory/rehearsal.py deploy/<deploy>.py [flags]` from the repo root.

        `on_line` is called with each output line as pyinfra prints it, pyinfra stopped
        (SIGSTOP) until it returns. After `timeout`
        seconds pyinfra is killed (the run then fails). With `kill_at`, pyinfra is killed
        (SIGKILL, as a dead laptop or a lost shell would) when it starts the operation whose
        name starts with `kill_at`: every operation before it has finished.
        """
        argv = [str(PYINFRA), "-y", *flags, "inventory/rehearsal.py", f"deploy/{deploy}.py"]
        started = time.monotonic()
        lines: list[str] = []
        with subprocess.Popen(
            argv,
            cwd=REPO,
            env={**self.env(), **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as popen:
            timer = threading.Timer(timeout, popen.kill)
            timer.start()
            try:
                assert popen.stdout is not None
                for line in popen.stdout:
                    lines.append(line)
                    if on_line is not None:
                        # pyinfra waits while the callback runs (a second run, a fault to
                        # inject): the window does not go on meanwhile, only what it already
                        # started on the VPS does.
                        os.kill(popen.pid, signal.SIGSTOP)
                        try:
                            on_line(line.rstrip("\n"))
                        finally:
                            os.kill(popen.pid, signal.SIGCONT)
                    if kill_at is not None and f"Starting operation: {kill_at}" in line:
                        popen.kill()
                        lines.append(f"[killed at: {kill_at}]\n")
                        break
                code = popen.wait()
            finally:
                timer.cancel()
        run = Run(code, "".join(lines), time.monotonic() - started)
        if os.environ.get("HANDLED_KEEP_RUN_LOGS"):  # debugging aid: every run's whole output
            log = Path(os.environ["HANDLED_KEEP_RUN_LOGS"]) / f"{deploy}-{int(started)}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(run.output, encoding="utf-8")
        return run

    # ----- what the tests look at -------------------------------------------------------------

    def logs(self) -> list[Path]:
        """Every log and record the window leaves: app and pm2 logs, server logs, VPS state."""
        home = self.vps.ssh.home
        paths = [
            *(self.vps.app.app_dir / "logs").glob("*.log"),
            *(home / ".pm2").glob("*.log"),
            *(home / ".pm2" / "logs").glob("*.log"),
            *(home / "backups").glob("*.json"),
            *(home / ".handled-deploy").glob("*"),
            self.vps.source.log_path,
            self.data_pg.log_path,
            self.dbaas.server.log_path,
            self.dbaas.bouncer.log_path,
            self.vps.ssh.log_path,
        ]
        return [p for p in paths if p.is_file()]

    def health(self) -> dict[str, Any]:
        """The API's health body ({} when it does not answer)."""
        body = self.vps.app.health().body
        return body if isinstance(body, dict) else {}

    def primary_count(self, table: str) -> int:
        """Rows of `table` in PRIMARY."""
        with self.dbaas.server.connect(self.primary_db) as conn:
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*table.split(".")))
            ).fetchone()
        return int(row[0]) if row else -1

    def count(self, server: PostgresServer, dbname: str, table: str) -> int:
        """Rows of `table` in `dbname` on `server`."""
        with server.connect(dbname) as conn:
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*table.split(".")))
            ).fetchone()
        return int(row[0]) if row else -1


class ProcSampler:
    """Read every process's command line from /proc every few milliseconds, in a thread."""

    def __init__(self, interval: float = 0.02) -> None:
        """Sample every ``interval`` seconds once started."""
        self.interval = interval
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                        raw = handle.read()
                except OSError:
                    continue
                if raw:
                    self.seen.add(raw.replace(b"\0", b" ").decode("utf-8", "replace"))
            time.sleep(self.interval)

    def __enter__(self) -> ProcSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def main() -> None:  # pragma: no cover - a manual harness
    """Start a window's stand-ins, print the environment to use, and wait for Ctrl-C."""
    source = PostgresServer.start(version=15, name="source")
    data = PostgresServer.start(version=17, name="data")
    dbaas = Dbaas.start()
    report_dir = Path("/tmp/handled-deploy-reports")
    window = Window.start(source_pg=source, data_pg=data, dbaas=dbaas, report_dir=report_dir)
    env_file = window.write_env_file(
        Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/handled-window.env")
    )
    print(f"ready: . {env_file}", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        window.stop()
        dbaas.stop()
        data.stop()
        source.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
