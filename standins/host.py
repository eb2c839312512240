"""The stand-in VPS: the fixture back-office app installed for the deploy user and run by pm2.

- `BackofficeApp`: the app tree in the deploy user's home (`~/handled` by default), installed
  with `pnpm install --frozen-lockfile`, `pnpm db:generate` and `pnpm build`, run by the user's
  own pm2 daemon (`~/.pm2`), with its env file `apps/backoffice/api/.env`.
- `Vps`: an `SshHost`, the old PostgreSQL 15 server with the `handled` database, the local
  PostgreSQL 17 DATA server with an empty `handled_data` database, and the app in single-DB mode.
- `http_json`: a small HTTP probe (no curl) returning the status and the decoded JSON body.

With `network=` (a `standins.netns.Network` with a namespace) the VPS (sshd, so pm2 and the
app, and the servers the caller starts with the same network) lives in its own network
namespace: the app's URLs name the VPS's address, which `http_json` accepts as well.

Every command that concerns the app runs over ssh as the deploy user, through its login shell,
exactly as the deploy's commands do. Secrets go into files (mode 0600), never into a command.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shlex
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from psycopg import sql

from standins import cleanup
from standins.cleanup import Leftover, StandIn
from standins.netns import is_project_address
from standins.postgres import PostgresServer
from standins.scram import new_password
from standins.smoke_user import SMOKE_EMAIL, add_smoke_user
from standins.sshd import DEFAULT_USER, SshHost
from standins.system import free_port

if TYPE_CHECKING:
    from standins.dbaas import Dbaas
    from standins.netns import Network
    from standins.s3 import S3Server

APP_SOURCE = Path(__file__).resolve().parent / "app"
"""The fixture app's sources (what the deploy finds checked out on the VPS)."""
CACHE_ROOT = Path("/var/cache/handled-standins")
"""pnpm store and npm cache, kept across runs (one directory per deploy user)."""
APP_DIR_NAME = "handled"
ENV_RELATIVE = Path("apps/backoffice/api/.env")
PM2_APPS = ("backoffice-api", "backoffice-web")
SOURCE_DB = "handled"
SOURCE_USER = "handled_user"
DATA_DB = "handled_data"
DATA_USER = "handled_data_user"
_COPY_IGNORE = shutil.ignore_patterns("node_modules", "dist", "logs", ".env", "ports.json")


class AppError(RuntimeError):
    """The fixture app could not be installed, started or brought to health."""


# ----- HTTP probe ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpResult:
    """One HTTP exchange: status 0 means no response (refused, reset, timed out)."""

    status: int
    body: Any
    error: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def http_json(
    url: str,
    *,
    method: str = "GET",
    payload: Mapping[str, Any] | None = None,
    timeout: float = 5.0,
) -> HttpResult:
    """Call `url` and decode a JSON body; never raises for HTTP errors.

    Only http to loopback or to a project-made namespace address (10.231.0.0/16, the stand-in
    VPS's own network) is allowed.
    """
    if not _allowed_http_url(url):
        raise ValueError(
            f"http_json only calls loopback or stand-in VPS (10.231.0.0/16) http URLs, not {url!r}"
        )
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return HttpResult(response.status, _decode(response.read()))
    except urllib.error.HTTPError as err:
        return HttpResult(err.code, _decode(err.read()))
    except (urllib.error.URLError, OSError) as err:
        return HttpResult(0, None, error=str(getattr(err, "reason", err)))


def _allowed_http_url(url: str) -> bool:
    """`http://127.0.0.1:PORT...`, `http://localhost:PORT...` or `http://10.231.x.y:PORT...`."""
    if url.startswith(("http://127.0.0.1:", "http://localhost:")):
        return True
    if not url.startswith("http://"):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    host = parts.hostname or ""
    # The netloc must be exactly `address:port` (no user info, no tricks for the parser).
    return port is not None and parts.netloc == f"{host}:{port}" and is_project_address(host)


def with_query(url: str, **params: str) -> str:
    """`url` with query parameters set or replaced (e.g. `sslrootcert=` a CA the VPS can read)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote, safe="/")))


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


# ----- env files -----------------------------------------------------------------------------


def render_env(values: Mapping[str, str]) -> str:
    """`.env` text: one `KEY="value"` line per item (backslash, quote and newline escaped)."""
    lines = []
    for key, value in values.items():
        if not key.replace("_", "").isalnum() or key[0].isdigit():
            raise ValueError(f"invalid env variable name {key!r}")
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        lines.append(f'{key}="{escaped}"')
    return "\n".join(lines) + "\n"


def parse_env(text: str) -> dict[str, str]:
    """Read `.env` text the way the app does (quotes, `export`, comments)."""
    result: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if value.startswith('"') and value.rfind('"') > 0:
            value = value[1 : value.rfind('"')]
            value = (
                value.replace("\\n", "\n")
                .replace('\\"', '"')
                .replace("\\t", "\t")
                .replace("\\\\", "\\")
            )
        elif value.startswith("'") and value.rfind("'") > 0:
            value = value[1 : value.rfind("'")]
        elif " #" in value:
            value = value.split(" #", 1)[0].strip()
        result[key.strip()] = value
    return result


# ----- the app -------------------------------------------------------------------------------


def prepare_node_tools(ssh: SshHost) -> None:
    """Give the deploy user a persistent pnpm store and npm cache (`~/.npmrc`).

    The store lives in /var/cache/handled-standins/<user>/ so repeated runs install `pg`
    without the network; pnpm still resolves from the lockfile exactly as on the VPS.
    """
    for tool in ("node", "pnpm", "pm2"):
        if shutil.which(tool) is None:
            raise AppError(
                f"{tool} is not installed: run `npm install -g pm2@6 pnpm@9` "
                "(the Makefile's system-deps)"
            )
    entry = pwd.getpwnam(ssh.user)
    cache = CACHE_ROOT / ssh.user
    for sub in ("pnpm-store", "pnpm-cache", "npm"):
        (cache / sub).mkdir(parents=True, exist_ok=True)
    CACHE_ROOT.chmod(0o755)
    for root, dirs, files in os.walk(cache):
        for name in [".", *dirs, *files]:
            os.lchown(Path(root) / name, entry.pw_uid, entry.pw_gid)
    npmrc = (
        f"store-dir={cache / 'pnpm-store'}\n"
        f"cache-dir={cache / 'pnpm-cache'}\n"
        f"cache={cache / 'npm'}\n"
        "prefer-offline=true\n"
        "update-notifier=false\n"
        "fund=false\n"
        "audit=false\n"
    )
    _write_as(ssh, ssh.home / ".npmrc", npmrc, 0o644)


def _write_as(ssh: SshHost, path: Path, text: str, mode: int) -> None:
    """Write `path` as a file of the deploy user with `mode` (created with it: no wider window)."""
    entry = pwd.getpwnam(ssh.user)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(mode)
    os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass
class BackofficeApp:
    """The fixture app installed in the deploy user's home, driven over ssh.

    `api_port`/`web_port` are written to `ports.json` (read by `ecosystem.config.js`), so
    `pm2 start`, `pm2 restart --update-env` and `pm2 startOrReload` all keep the same ports.
    The URLs name the ssh host's address: 127.0.0.1, or the VPS's address in its namespace.
    """

    ssh: SshHost
    app_dir: Path
    api_port: int
    web_port: int

    @property
    def env_path(self) -> Path:
        """`apps/backoffice/api/.env`: the file the deploy rewrites."""
        return self.app_dir / ENV_RELATIVE

    @property
    def api_url(self) -> str:
        return f"http://{self.ssh.host}:{self.api_port}"

    @property
    def web_url(self) -> str:
        return f"http://{self.ssh.host}:{self.web_port}"

    @property
    def health_url(self) -> str:
        return f"{self.api_url}/api/health"

    # ----- files ---------------------------------------------------------------------------

    def write_env(self, values: Mapping[str, str]) -> None:
        """Replace the app's `.env` (mode 0600, owned by the deploy user)."""
        _write_as(self.ssh, self.env_path, render_env(values), 0o600)

    def read_env(self) -> dict[str, str]:
        """The app's current `.env` as a dict ({} when there is none)."""
        try:
            return parse_env(self.env_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    # ----- commands as the deploy user ------------------------------------------------------

    def sh(self, command: str, *, timeout: float = 180.0, check: bool = True) -> str:
        """Run `command` in the app dir as the deploy user; returns stdout+stderr.

        Raises AppError with the output's tail when it fails and `check` is set.
        """
        result = self.ssh.run(f"cd {shlex.quote(str(self.app_dir))} && {command}", timeout=timeout)
        output = result.stdout + result.stderr
        if check and result.returncode != 0:
            tail = "\n".join(output.strip().splitlines()[-20:])
            raise AppError(f"`{command}` failed on the VPS (exit {result.returncode}):\n{tail}")
        return output

    def install(self) -> None:
        """`pnpm install --frozen-lockfile`, `pnpm db:generate`, `pnpm build`."""
        self.sh("pnpm install --frozen-lockfile --reporter=append-only")
        self.sh("pnpm run --silent db:generate && pnpm run --silent build")

    def migrate(self, which: str) -> str:
        """`pnpm db:migrate:primary`, `db:migrate:data` or (`all`) `db:migrate`; the output."""
        script = {"primary": "db:migrate:primary", "data": "db:migrate:data", "all": "db:migrate"}
        return self.sh(f"pnpm run --silent {script[which]}")

    def pm2(self, args: str, *, check: bool = True) -> str:
        """`pm2 <args>` as the deploy user (its own daemon in ~/.pm2)."""
        return self.sh(f"pm2 {args}", check=check, timeout=60)

    def start(self, *, timeout: float = 30.0) -> dict[str, Any]:
        """`pm2 start ecosystem.config.js` and wait for the API to answer; its health body."""
        self.pm2("start ecosystem.config.js")
        return self.wait_health(timeout=timeout, require_ok=False)

    def restart(
        self, *, timeout: float = 30.0, require_ok: bool = True, mode: str | None = None
    ) -> dict[str, Any]:
        """`pm2 restart backoffice-api backoffice-web --update-env`, as the deploy does.

        Waits for a new API process (a different pid) to answer health (ok unless
        `require_ok=False`, in `mode` when given); returns the health body.
        """
        before = self.api_pid()
        self.pm2(f"restart {' '.join(PM2_APPS)} --update-env")
        return self.wait_health(timeout=timeout, require_ok=require_ok, mode=mode, not_pid=before)

    def install_file(self, source: Path, relative: str, *, mode: int = 0o644) -> Path:
        """Copy `source` to `<app_dir>/<relative>` as a file of the deploy user (e.g. a CA)."""
        target = self.app_dir / relative
        _write_as(self.ssh, target, source.read_text(encoding="utf-8"), mode)
        return target

    def kill_pm2(self) -> None:
        """Stop every app and the user's pm2 daemon (`pm2 kill`)."""
        self.pm2("kill", check=False)

    def processes(self) -> list[dict[str, Any]]:
        """pm2's processes (name, pid, status, restarts) from `pm2 jlist`.

        Only these fields are kept: jlist also carries every environment variable.
        """
        output = self.pm2("jlist")
        start = output.find("[")
        if start < 0:
            raise AppError("pm2 jlist printed no JSON list")
        raw = json.JSONDecoder().raw_decode(output[start:])[0]
        return [
            {
                "name": proc.get("name"),
                "pid": proc.get("pid"),
                "status": proc.get("pm2_env", {}).get("status"),
                "restarts": proc.get("pm2_env", {}).get("restart_time"),
            }
            for proc in raw
        ]

    def api_pid(self) -> int | None:
        """The pid the running API reports in its health body (None when it does not answer)."""
        result = http_json(self.health_url, timeout=5)
        if isinstance(result.body, dict) and isinstance(result.body.get("pid"), int):
            return int(result.body["pid"])
        return None

    # ----- health --------------------------------------------------------------------------

    def health(self, *, timeout: float = 8.0) -> HttpResult:
        """GET /api/health once: 200 with status ok, 503 with status degraded, 0 if down."""
        return http_json(self.health_url, timeout=timeout)

    def wait_health(
        self,
        *,
        timeout: float = 30.0,
        require_ok: bool = True,
        mode: str | None = None,
        not_pid: int | None = None,
    ) -> dict[str, Any]:
        """Poll /api/health until it answers (and is ok / in `mode` / from a new process)."""
        deadline = time.monotonic() + timeout
        last: HttpResult | None = None
        while time.monotonic() < deadline:
            last = self.health()
            body = last.body
            if isinstance(body, dict) and "status" in body:
                fresh = not_pid is None or body.get("pid") != not_pid
                good = not require_ok or body["status"] == "ok"
                if fresh and good and (mode is None or body.get("mode") == mode):
                    return body
            time.sleep(0.25)
        seen = (
            json.dumps(last.body)[:600]
            if last and last.body is not None
            else (last.error if last else "-")
        )
        raise AppError(
            f"API health at {self.health_url} not as expected after {timeout:.0f}s "
            f"(last: {seen}); api log:\n{self.log_tail()}"
        )

    def log_tail(self, app: str = "backoffice-api", lines: int = 15) -> str:
        """The last lines of an app's pm2 logs (stdout and stderr)."""
        parts = []
        for stream in ("out", "err"):
            path = self.app_dir / "logs" / f"{app}.{stream}.log"
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            parts += [f"[{stream}] {line}" for line in text.splitlines()[-lines:]]
        return "\n".join(parts) or "(no pm2 logs yet)"


def install_app(
    ssh: SshHost,
    *,
    app_dir: Path | None = None,
    api_port: int | None = None,
    web_port: int | None = None,
    source: Path = APP_SOURCE,
) -> BackofficeApp:
    """Copy the fixture app into the deploy user's home and install it (pnpm, generate, build).

    The app dir is replaced if it exists. It is not started: write an env file, then `start()`.
    """
    prepare_node_tools(ssh)
    target = app_dir if app_dir is not None else ssh.home / APP_DIR_NAME
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=_COPY_IGNORE, symlinks=True)
    entry = pwd.getpwnam(ssh.user)
    for root, dirs, files in os.walk(target):
        for name in [".", *dirs, *files]:
            os.lchown(Path(root) / name, entry.pw_uid, entry.pw_gid)
    app = BackofficeApp(
        ssh=ssh,
        app_dir=target,
        api_port=api_port if api_port is not None else free_port(),
        web_port=web_port if web_port is not None else free_port(),
    )
    ports = json.dumps({"api": app.api_port, "web": app.web_port}) + "\n"
    _write_as(ssh, target / "ports.json", ports, 0o644)
    app.install()
    return app


# ----- the VPS -------------------------------------------------------------------------------


SourceSeeder = Callable[[str], None]
"""`seed(owner_url)`: fills the old database, connected as its owner (schemas, tables, rows)."""


def handled_seed(scale_mb: int = 1) -> SourceSeeder:
    """A seeder loading `standins.handled_data` at `scale_mb` (1 MB: ~5,000 rows in 2 s)."""

    def seed(owner_url: str) -> None:
        from standins import handled_data

        handled_data.generate(owner_url, scale_mb, jobs=1, progress=None)

    return seed


@dataclass
class Vps(StandIn):
    """The whole VPS side: ssh, the old PG15 `handled` database, the PG17 DATA server, the app.

    The app runs in single-DB mode on `handled` as `handled_user`. DATA has an empty
    `handled_data` database owned by `handled_data_user`. Servers passed in (e.g. the session
    fixtures) are left running at `stop()`; the databases and roles made here are dropped.
    """

    ssh: SshHost
    app: BackofficeApp
    source: PostgresServer
    data: PostgresServer
    source_db: str
    source_user: str
    source_password: str = field(repr=False)
    data_db: str
    data_user: str
    data_password: str = field(repr=False)
    auth_secret: str = field(repr=False)
    smoke_password: str = field(repr=False)
    smoke_email: str = SMOKE_EMAIL
    _owned: list[Any] = field(default_factory=list, repr=False)

    @classmethod
    def start(
        cls,
        *,
        ssh: SshHost | None = None,
        source: PostgresServer | None = None,
        data: PostgresServer | None = None,
        user: str = DEFAULT_USER,
        source_db: str = SOURCE_DB,
        source_user: str = SOURCE_USER,
        data_db: str = DATA_DB,
        data_user: str = DATA_USER,
        scale_mb: int | None = 1,
        seed: SourceSeeder | None = None,
        create_data_db: bool = True,
        start_app: bool = True,
        network: Network | None = None,
    ) -> Vps:
        """Set up everything (about 10 s with servers passed in); the app healthy in single mode.

        The old database is filled by `seed` if given, else by `standins.handled_data` at
        `scale_mb` (None: no data, the app's migrations create empty tables). The app's
        migrations (`pnpm db:migrate`) then run in single-DB mode, where they only record
        themselves in `_prisma_migrations` next to the old history.
        `create_data_db=False` leaves the DATA role and database to the deploy (which creates
        them through `data_admin_url()`); `data_password` is then only a suggestion.
        Database and role names are per server: two Vps sharing servers need different ones
        (and different deploy users).
        `network` puts the VPS in its network namespace: the SshHost started here (and the
        servers started here) run inside it. Servers and an `ssh` passed in are the caller's:
        start them with the same network.
        """
        owned: list[Any] = []
        try:
            if ssh is None:
                ssh = SshHost.start(user=user, network=network)
                owned.append(ssh)
            if source is None:
                source = PostgresServer.start(version=15, name="vps-source", network=network)
                owned.append(source)
            if data is None:
                data = PostgresServer.start(version=17, name="vps-data", network=network)
                owned.append(data)
            source_password = new_password()
            data_password = new_password()
            _fresh_database(source, source_db, source_user, source_password)
            if create_data_db:
                _fresh_database(data, data_db, data_user, data_password)
            else:
                _drop_database(data, data_db, data_user)
            if seed is None and scale_mb is not None:
                seed = handled_seed(scale_mb)
            if seed is not None:
                seed(source.url(source_db, user=source_user, password=source_password))
            app = install_app(ssh)
            vps = cls(
                ssh=ssh,
                app=app,
                source=source,
                data=data,
                source_db=source_db,
                source_user=source_user,
                source_password=source_password,
                data_db=data_db,
                data_user=data_user,
                data_password=data_password,
                auth_secret=secrets.token_urlsafe(32),
                smoke_password=new_password(),
                _owned=owned,
            )
            cleanup.track(vps)
            app.write_env(vps.single_env())
            app.migrate("all")
            add_smoke_user(vps.source_url(), vps.smoke_email, vps.smoke_password)
            if start_app:
                app.start()
                app.wait_health(mode="single")
        except BaseException:
            if ssh is not None and ssh not in owned:
                with contextlib.suppress(Exception):
                    BackofficeApp(ssh, ssh.home / APP_DIR_NAME, 0, 0).kill_pm2()
            for server, db, role in ((source, source_db, source_user), (data, data_db, data_user)):
                if server is not None and server not in owned:
                    _drop_database(server, db, role)
            for thing in reversed(owned):
                thing.stop()
            raise
        return vps

    # ----- URLs and env files --------------------------------------------------------------

    def source_url(self) -> str:
        """The old database as the app's role (what single-DB mode's DATABASE_URL holds)."""
        return self.source.url(self.source_db, user=self.source_user, password=self.source_password)

    def data_url(self) -> str:
        """The DATA database as its owner role (DATA_DATABASE_URL)."""
        return self.data.url(self.data_db, user=self.data_user, password=self.data_password)

    def data_admin_url(self) -> str:
        """A superuser on the DATA server (what the deploy's DATA_ADMIN_URL holds)."""
        return self.data.url()

    def deploy_env(
        self,
        *,
        dbaas: Dbaas | None = None,
        s3: S3Server | None = None,
        bucket: str | None = None,
    ) -> dict[str, str]:
        """Environment for running the deploy against this VPS (`inventory/rehearsal.py`).

        Holds secrets (database URLs, AUTH_SECRET, the Spaces key): pass it as the environment
        of the pyinfra process, never on a command line. With `dbaas`, PRIMARY is its `app_db`
        through its pool (`pgbouncer=true`) and directly, with its CA file; with `s3`, the
        Spaces endpoint and key (and `bucket` when given).
        """
        env = {
            **self.ssh.inventory_env(),
            "HANDLED_APP_DIR": str(self.app.app_dir),
            "HANDLED_HEALTH_URL": self.app.health_url,
            "HANDLED_API_URL": self.app.api_url,
            "HANDLED_WEB_URL": self.app.web_url,
            "OLD_DATABASE_URL": self.source_url(),
            "DATA_DATABASE_URL": self.data_url(),
            "DATA_ADMIN_URL": self.data_admin_url(),
            "AUTH_SECRET": self.auth_secret,
            "SMOKE_PASSWORD": self.smoke_password,
        }
        if dbaas is not None:
            env["PRIMARY_DATABASE_URL"] = dbaas.pool_url()
            env["PRIMARY_DIRECT_URL"] = dbaas.direct_url()
            env["PRIMARY_CA_CERT_FILE"] = str(dbaas.ca_path)
        if s3 is not None:
            env["HANDLED_S3_ENDPOINT"] = s3.endpoint_url
            env["SPACES_ACCESS_KEY_ID"] = s3.access_key
            env["SPACES_SECRET_ACCESS_KEY"] = s3.secret_key
            if bucket is not None:
                env["HANDLED_BACKUP_BUCKET"] = bucket
        return env

    def single_env(self) -> dict[str, str]:
        """The pre-split `.env`: single-DB mode on the old database."""
        url = self.source_url()
        return {
            "SPLIT_DB_MODE": "false",
            "DATABASE_URL": url,
            "PRIMARY_DATABASE_URL": url,
            "AUTH_SECRET": self.auth_secret,
        }

    def split_env(self, *, primary_pool_url: str, primary_direct_url: str) -> dict[str, str]:
        """A post-split `.env` (what the deploy writes), for tests of the app itself."""
        return {
            "SPLIT_DB_MODE": "true",
            "PRIMARY_DATABASE_URL": primary_pool_url,
            "PRIMARY_DIRECT_URL": primary_direct_url,
            "DATA_DATABASE_URL": self.data_url(),
            "AUTH_SECRET": self.auth_secret,
        }

    # ----- lifecycle -----------------------------------------------------------------------

    def leftovers(self) -> list[Leftover]:
        """What this Vps started (its SshHost covers pm2 and the app: the deploy user's
        processes). Databases made on servers passed in stay with those servers."""
        return [item for thing in reversed(self._owned) for item in thing.leftovers()]

    def _detach(self) -> None:
        for thing in reversed(self._owned):
            thing.detach()

    def _shutdown(self) -> None:
        """Kill pm2, drop the databases and roles, stop what this Vps started."""
        # sshd may already be gone; SshHost.stop then kills the user's leftover processes.
        with contextlib.suppress(Exception):
            self.app.kill_pm2()
        for server, db, role in (
            (self.source, self.source_db, self.source_user),
            (self.data, self.data_db, self.data_user),
        ):
            if server not in self._owned:
                _drop_database(server, db, role)
        for thing in reversed(self._owned):
            thing.stop()


def _fresh_database(server: PostgresServer, name: str, owner: str, password: str) -> None:
    """(Re)create database `name` owned by login role `owner` with `password`."""
    _drop_database(server, name, None)
    server.create_role(owner, password)
    server.create_database(name, owner=owner)


def _drop_database(server: PostgresServer, name: str, role: str | None) -> None:
    # Best effort at teardown: the server may already be stopping.
    with contextlib.suppress(Exception):
        server.drop_database(name)
        if role is not None:
            server.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
