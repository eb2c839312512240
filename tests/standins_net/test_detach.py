"""Detached stand-ins outlive the process that started them; another process sweeps them.

A separate Python process starts a namespace, PostgreSQL in it, the DBaaS stand-in (PostgreSQL
and PgBouncer), moto S3 and sshd with a process of the deploy user (as pm2 would be), detaches
them all and exits. This test process then finds every one still running and answering, the
namespace beyond the stale sweep, the deploy user's lock held; and after `sweep()` of the
leftovers the exited process printed, every process, directory, lock and the namespace gone.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from standins import netns
from standins.cleanup import Leftover
from standins.host import http_json
from standins.leftovers import sweep
from standins.postgres import bin_dir
from standins.sshd import LOCK_DIR
from tests.standins_net.conftest import NET_USER

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
from standins.dbaas import Dbaas
from standins.netns import VpsNamespace
from standins.postgres import PostgresServer
from standins.s3 import S3Server
from standins.sshd import SshHost

net = VpsNamespace.create()
pg = PostgresServer.start(version=15, name="detach", network=net)
dbaas = Dbaas.start(network=net)
s3 = S3Server.start(host=net.host_address)
ssh = SshHost.start(user=sys.argv[1], network=net)
ssh.run("nohup sleep 600 >/dev/null 2>&1 </dev/null &", check=True)
leftovers = [*ssh.detach(), *s3.detach(), *dbaas.detach(), *pg.detach(), *net.detach()]
print(json.dumps({
    "leftovers": [item.to_json() for item in leftovers],
    "pg": [str(pg.socket_dir), pg.port],
    "dbaas": [str(dbaas.server.socket_dir), dbaas.server.port],
    "s3": s3.endpoint_url,
    "ssh": [*ssh.ssh_argv(), f"{ssh.user}@{ssh.host}"],
    "namespace": net.namespace,
}))
"""


def alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie (this machine's init is slow to reap)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def deploy_user_locked(user: str) -> bool:
    """Whether some SshHost (or the keeper of a detached one) holds `user`'s lock."""
    fd = os.open(LOCK_DIR / f"handled-standins-ssh-{user}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def user_pids(user: str) -> list[int]:
    """The deploy user's live processes."""
    listed = subprocess.run(["pgrep", "-u", user], capture_output=True, text=True).stdout
    return [pid for pid in map(int, listed.split()) if alive(pid)]


def _pg_ready(socket_dir: str, port: int) -> bool:
    argv = [str(bin_dir(17) / "pg_isready"), "-h", socket_dir, "-p", str(port)]
    return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0


@pytest.fixture(scope="module")
def detached() -> Iterator[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, NET_USER],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    leftovers = [Leftover.from_json(item) for item in data["leftovers"]]
    data["leftovers"] = leftovers
    try:
        yield data
    finally:
        sweep(leftovers)  # idempotent: nothing left after the sweep test


def test_detached_stand_ins_outlive_their_process(detached: dict[str, Any]) -> None:
    leftovers: list[Leftover] = detached["leftovers"]
    processes = [p for item in leftovers for p in item.processes]
    # postgres x2, pgbouncer, moto, sshd and the lock keeper
    assert len(processes) == 6, leftovers
    assert all(alive(p.pid) for p in processes)
    paths = [Path(p) for item in leftovers for p in item.paths]
    assert len(paths) == 6  # pg, dbaas pg, pgbouncer, dbaas certificates, s3, sshd
    assert all(path.is_dir() for path in paths)
    assert _pg_ready(*detached["pg"])
    assert _pg_ready(*detached["dbaas"])
    assert http_json(f"{detached['s3']}/moto-api/").status == 200
    ssh = subprocess.run(
        [*detached["ssh"], 'echo detached; pgrep -c -x -u "$(id -u)" sleep'],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ssh.stdout.split() == ["detached", "1"], ssh.stderr
    assert deploy_user_locked(NET_USER), "a second SshHost could take the kept deploy user"
    name = detached["namespace"]
    assert name not in netns.remove_stale_namespaces(), "the stale sweep took a kept namespace"
    assert name in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_sweep_removes_everything_they_left(detached: dict[str, Any]) -> None:
    leftovers: list[Leftover] = detached["leftovers"]
    user = user_pids(NET_USER)
    assert user, "the deploy user's process (as pm2 would be) is already gone"
    lines = sweep(leftovers)
    processes = [p for item in leftovers for p in item.processes]
    paths = [Path(p) for item in leftovers for p in item.paths]
    assert not [p.pid for p in processes if alive(p.pid)]
    assert not [path for path in paths if path.exists()]
    # (another session waiting for the deploy user may take it, and its lock, at once)
    assert not [pid for pid in user if alive(pid)]
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert detached["namespace"] not in namespaces
    assert not (netns.KEPT_DIR / detached["namespace"]).exists()
    text = "\n".join(lines)
    assert f"processes of {NET_USER}" in text
    assert sum(line.startswith("stopped ") for line in lines) == 1 + len(processes)
    assert sum(line.startswith("removed /") for line in lines) == len(paths)
    assert f"removed network namespace {detached['namespace']}" in text
    assert sweep(leftovers) == [], "a second sweep finds nothing"
