"""``--keep``: leave the rehearsal's stand-ins running after the command exits, and say how to
use them.

The world and its network are detached (`standins.window.Window.detach`): nothing stops them at
exit, their servers already run in sessions of their own, their files stay, the VPS's namespace
is marked kept and the deploy user's lock stays held. The ledger records how to stop them all
(`python -m rehearsal --stop`; the next rehearsal sweeps them too). URLs and keys go to two
files of mode 0600 beside the report, never to the terminal: ``stand-ins.env`` (what pyinfra
needs, and ``PGSERVICEFILE``) and ``stand-ins.pg_service.conf`` (psql's services).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from rehearsal import ledger
from standins.cleanup import Leftover
from standins.netns import Network
from standins.window import BUCKET, REPO
from standins.window import Window as World

ENV_FILE = "stand-ins.env"
SERVICE_FILE = "stand-ins.pg_service.conf"
PYINFRA = ".venv/bin/pyinfra -y"
INVENTORY = "inventory/rehearsal.py"


@dataclass(frozen=True)
class Kept:
    """A kept world: its env file and the lines telling an operator how to use and stop it."""

    env_file: Path
    lines: list[str]


def keep(world: World, network: Network, directory: Path) -> Kept:
    """Write the env and service files, detach the world and its network, record the ledger."""
    service_file = _write_services(world, directory / SERVICE_FILE)
    env_file = world.write_env_file(directory / ENV_FILE, {"PGSERVICEFILE": str(service_file)})
    outputs = world.stack_outputs()  # the stack outputs file holds secrets too
    files = Leftover(
        what="the kept world's env files", paths=(str(env_file), str(service_file), str(outputs))
    )
    leftovers = [*world.detach(), *network.detach(), files]
    ledger.record(leftovers, kept=True, info={"env_file": str(env_file)})
    return Kept(env_file, instructions(world, network, env_file))


def services(world: World) -> dict[str, str]:
    """psql's services (name -> libpq URL) for the kept world's databases."""
    vps, dbaas = world.vps, world.dbaas
    return {
        "source": vps.source_url(),
        "source-admin": vps.source.url(vps.source_db),
        "data": vps.data_url(),
        "data-admin": world.data_pg.url(),
        "primary": dbaas.direct_url(world.primary_db),
        "primary-pool": dbaas.pool_url(pool=world.pool_name, prisma=False),
    }


def _write_services(world: World, path: Path) -> Path:
    """A pg_service.conf of `services()`, mode 0600 (it holds the passwords)."""
    sections = []
    for name, url in services(world).items():
        params = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
        if any("\n" in v for v in params.values()):
            raise ValueError(f"service {name}: a connection parameter holds a newline")
        sections.append(f"[{name}]\n" + "".join(f"{k}={v}\n" for k, v in params.items()))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(sections))
    path.chmod(0o600)
    return path


def instructions(world: World, network: Network, env_file: Path) -> list[str]:
    """One command per line (`  label: command`), each working as printed from any directory
    in a fresh root shell; `#` lines explain. No URL or key: those stay in `env_file`."""
    ssh, app = world.vps.ssh, world.vps.app
    env = shlex.quote(str(env_file))
    repo = shlex.quote(str(REPO))
    inside = shlex.join(network.prefix()) + " " if network.isolated else ""
    ssh_argv = [
        "ssh", "-F", "/dev/null", "-i", str(ssh.client_key_path), "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={ssh.known_hosts_path}", "-p", str(ssh.port),
        f"{ssh.user}@{ssh.host}",
    ]  # fmt: skip
    names = list(services(world))
    health = world.health()
    state = f"{health.get('status')} in {health.get('mode')} mode" if health else "not answering"
    pyinfra = f"cd {repo} && . {env} && {PYINFRA}"
    return [
        "stand-ins kept running after this command exits, until `make rehearse ARGS=--stop` "
        "(or the next rehearsal) stops them:",
        f"  env:      {env}",
        f"  ssh:      {shlex.join(ssh_argv)}",
        f"  health:   curl -sS {app.health_url}",
        f"  psql:     . {env} && psql service=source",
        f"  DBaaS:    . {env} && {inside}psql service=primary",
        f"  reset:    {pyinfra} --data confirm_reset=yes {INVENTORY} deploy/reset_split.py",
        f"  init:     {pyinfra} {INVENTORY} deploy/primary_init.py",
        f"  window:   {pyinfra} {INVENTORY} deploy/production.py",
        f"  check:    {pyinfra} {INVENTORY} deploy/check.py",
        f"  rollback: {pyinfra} {INVENTORY} deploy/rollback.py",
        f"  stop:     cd {repo} && .venv/bin/python -m rehearsal --stop",
        f"  # the app is {state} now; to run the window again: reset, init, window (in this "
        "order, as the rehearsal's redeploy), then check (the first hour's validation), rollback",
        "  # the env file (mode 0600) holds every URL and key and names psql's service file:",
        f"  # services {', '.join(names)}; the DBaaS admits only the VPS's address"
        + (f" ({network.vps_address}: run psql in its namespace as above)" if inside else ""),
        f"  # web app {app.web_url}; Spaces (moto S3) {world.s3.endpoint_url}, bucket {BUCKET}",
    ]
