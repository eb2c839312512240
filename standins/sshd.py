"""A real OpenSSH server on loopback, logging in a real unprivileged deploy user: the "VPS".

`SshHost.start()` creates (or reuses) the deploy user, gives it a fresh home set up like the VPS
account (a login PATH that finds node, pm2, pnpm, python3 and the PostgreSQL 17 client tools),
makes a client key for this run only, and runs `sshd` on 127.0.0.1:<free port> with its own
config, host key and pid file. Key authentication only, SFTP on, no PAM.

One SshHost at a time per deploy user: a lock file serialises concurrent test sessions on the
same machine (they would otherwise share the user's home and its pm2 daemon).

With `network=` (a `standins.netns.Network` with a namespace), sshd runs inside the VPS's
network namespace and listens on the VPS's address: everything started over ssh (pm2, the app,
dbsplit) runs there too, and reaches the "cloud" only at `network.host_address`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from standins import cleanup
from standins.cleanup import Leftover, StandIn, processes
from standins.system import (
    end_process,
    free_port,
    is_root,
    launch_on_free_port,
    log_tail,
    user_exists,
    wait_started,
)

if TYPE_CHECKING:
    from standins.netns import Network

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
DEFAULT_USER = os.environ.get("HANDLED_STANDIN_USER") or "handled-deploy"
"""The stand-in deploy user; ``HANDLED_STANDIN_USER`` gives each checkout its own."""
START_TIMEOUT = 15.0
LOCK_TIMEOUT = 300.0
LOCK_DIR = Path("/run/lock")
MARKER = ".handled-standin"
"""File in the home of a user this module created; only such homes are ever wiped."""

PG_CLIENT_TOOLS = (
    "pg_dump",
    "pg_dumpall",
    "pg_restore",
    "psql",
    "pg_isready",
    "createdb",
    "dropdb",
    "vacuumdb",
)
"""PostgreSQL 17 tools linked into the deploy user's `~/bin` (newer than the PG15 source)."""

LOGIN_PATH = "$HOME/bin:/usr/local/bin:/usr/bin:/bin"
"""The deploy user's PATH: its `~/bin` (PG17 client tools) first, then the system's."""

_ACTIVE_LOCK = threading.Lock()
_ACTIVE_USERS: set[str] = set()


class SshStartError(RuntimeError):
    """The stand-in sshd or its deploy user could not be set up."""


def _run(argv: list[str], what: str) -> None:
    """Run a setup command; raise SshStartError with its output on failure."""
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-10:]
        raise SshStartError(f"{what} failed (exit {result.returncode}): " + " | ".join(output))


def _pg17_bin_dir() -> Path:
    from standins.postgres import bin_dir

    return bin_dir(17)


def _dotfiles(bind_host: str | None = None) -> dict[str, str]:
    """The deploy user's shell start-up files.

    sshd runs every command as `<login shell> -c '<command>'`. bash reads `~/.bashrc` when it
    is started by sshd, even non-interactively, so the PATH line sits at the top of `.bashrc`,
    before the usual "not interactive: stop here" guard. `.profile` covers login shells.
    With `bind_host` (a VPS in its own namespace), `BIND_HOST` tells the app where to listen.
    """
    env_sh = (
        "# Written by standins.sshd: the deploy user's PATH (PostgreSQL 17 client tools first).\n"
        f'export PATH="{LOGIN_PATH}"\n'
    )
    if bind_host is not None:
        env_sh += (
            "# The VPS has its own network namespace: the app listens on its address too.\n"
            f'export BIND_HOST="{bind_host}"\n'
        )
    bashrc = (
        "# Written by standins.sshd.\n"
        '[ -r "$HOME/.handled-env.sh" ] && . "$HOME/.handled-env.sh"\n'
        "case $- in *i*) ;; *) return ;; esac\n"
        "PS1='\\u@vps:\\w\\$ '\n"
    )
    profile = (
        "# Written by standins.sshd.\n"
        '[ -r "$HOME/.handled-env.sh" ] && . "$HOME/.handled-env.sh"\n'
        'if [ -n "$BASH_VERSION" ] && [ -r "$HOME/.bashrc" ]; then . "$HOME/.bashrc"; fi\n'
    )
    return {".handled-env.sh": env_sh, ".bashrc": bashrc, ".profile": profile}


class SshHost(StandIn):
    """A running sshd on 127.0.0.1 that admits `user` with a client key made for this run.

    Use as a context manager or call `stop()`. Needs root (sshd switches to the user).
    With a namespaced `network`, sshd runs inside it and `host` is the VPS's address.
    """

    host: str
    port: int
    user: str
    home: Path
    base_dir: Path
    client_key_path: Path
    known_hosts_path: Path
    log_path: Path
    network: Network | None

    def __init__(
        self,
        *,
        user: str,
        base_dir: Path,
        port: int,
        network: Network | None = None,
    ) -> None:
        """Describe a host laid out in `base_dir`; `start()` is what sets one up."""
        if network is not None and network.namespace is None:
            network = None  # the loopback fallback is the default layout
        self.network = network
        self.host = network.vps_address if network is not None else "127.0.0.1"
        self.port = port
        self.user = user
        self.base_dir = base_dir
        self.home = Path(pwd.getpwnam(user).pw_dir) if user_exists(user) else Path("/nonexistent")
        self.client_key_path = base_dir / "client_ed25519"
        self.known_hosts_path = base_dir / "known_hosts"
        self.log_path = base_dir / "sshd.log"
        self._config_path = base_dir / "sshd_config"
        self._host_key_path = base_dir / "ssh_host_ed25519_key"
        self._pid_path = base_dir / "sshd.pid"
        self._process: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None
        self._keeper: int | None = None
        self._registered = False

    # ----- lifecycle -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        user: str = DEFAULT_USER,
        port: int | None = None,
        fresh_home: bool = True,
        lock_timeout: float = LOCK_TIMEOUT,
        network: Network | None = None,
    ) -> SshHost:
        """Set up `user` and start sshd; returns once sshd answers with its banner.

        `fresh_home` empties the user's home first (only for users this module created).
        Waits up to `lock_timeout` seconds for another SshHost using the same user to stop.
        With a namespaced `network`, sshd runs in the VPS's namespace on its address, and the
        user's login environment sets `BIND_HOST=0.0.0.0` (inside the namespace: its loopback
        and the VPS's address) so the app answers the host at the VPS's address.
        """
        if not is_root():
            raise SshStartError("the sshd stand-in needs root: it creates and logs in a real user")
        if not Path(SSHD).exists() or not Path(SFTP_SERVER).exists():
            raise SshStartError(f"{SSHD} or {SFTP_SERVER} missing: install openssh-server")
        if user == "root" or not user.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"refusing deploy user {user!r}: use a plain unprivileged name")
        base_dir = Path(tempfile.mkdtemp(prefix="handled-standins-sshd-"))
        base_dir.chmod(0o700)
        ssh = cls(
            user=user,
            base_dir=base_dir,
            port=port if port is not None else free_port(),
            network=network,
        )
        cleanup.track(ssh)
        try:
            ssh._lock(lock_timeout)
            ssh._ensure_user()
            ssh._prepare_home(fresh=fresh_home)
            ssh._make_keys()
            launch_on_free_port(
                ssh,
                ssh._launch,
                SshStartError,
                port_fixed=port is not None,
            )
            ssh._write_known_hosts()
        except BaseException:
            ssh.stop()
            raise
        return ssh

    def _lock(self, timeout: float) -> None:
        """Hold an exclusive lock on the deploy user for this host's lifetime."""
        with _ACTIVE_LOCK:
            if self.user in _ACTIVE_USERS:
                raise SshStartError(
                    f"deploy user {self.user!r} already has a running SshHost in this process: "
                    "share that one (one session-scoped fixture) or pass another user="
                )
            _ACTIVE_USERS.add(self.user)
        self._registered = True
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        path = LOCK_DIR / f"handled-standins-ssh-{self.user}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
                    os.close(fd)
                    raise SshStartError(
                        f"deploy user {self.user!r} is still in use by another SshHost after "
                        f"{timeout:.0f}s (lock {path}: held by pid {holder})"
                    ) from None
                time.sleep(0.5)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _ensure_user(self) -> None:
        """Create the user if missing, and unlock it for key logins (`useradd` locks it)."""
        if not user_exists(self.user):
            _run(
                ["useradd", "--create-home", "--shell", "/bin/bash", "--user-group", self.user],
                f"useradd {self.user}",
            )
            home = Path(pwd.getpwnam(self.user).pw_dir)
            (home / MARKER).write_text("created by standins.sshd\n", encoding="utf-8")
        # With `UsePAM no`, sshd refuses locked accounts ("!" in /etc/shadow): set "*" instead,
        # which has no password but is not locked.
        _run(["usermod", "--password", "*", self.user], f"usermod -p '*' {self.user}")
        self.home = Path(pwd.getpwnam(self.user).pw_dir)

    def _prepare_home(self, *, fresh: bool) -> None:
        """Empty the home (when ours and `fresh`), then write dotfiles, `~/bin`, `~/.ssh`."""
        entry = pwd.getpwnam(self.user)
        uid, gid = entry.pw_uid, entry.pw_gid
        home = self.home
        home.mkdir(mode=0o750, exist_ok=True)
        ours = (home / MARKER).exists()
        if fresh and ours:
            self.kill_user_processes()
            for child in home.iterdir():
                if child.name == MARKER:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        # StrictModes: the home must not be group- or world-writable.
        os.chown(home, uid, gid)
        home.chmod(0o750)
        # Inside the namespace "all interfaces" are its loopback and the VPS's address.
        bind_host = "0.0.0.0" if self.network is not None else None  # noqa: S104
        for name, text in _dotfiles(bind_host).items():
            _write_owned(home / name, text, uid, gid, 0o644)
        bin_dir = home / "bin"
        bin_dir.mkdir(exist_ok=True)
        os.chown(bin_dir, uid, gid)
        pg17 = _pg17_bin_dir()
        for tool in PG_CLIENT_TOOLS:
            link = bin_dir / tool
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(pg17 / tool)
            os.lchown(link, uid, gid)
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        ssh_dir.chmod(0o700)
        os.chown(ssh_dir, uid, gid)

    def _make_keys(self) -> None:
        """A host key for sshd and a client key for this run, authorised for the user."""
        for path, comment in (
            (self._host_key_path, "handled-standin-host"),
            (self.client_key_path, f"handled-standin-client-{os.getpid()}"),
        ):
            _run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                f"ssh-keygen {path.name}",
            )
        entry = pwd.getpwnam(self.user)
        public = Path(f"{self.client_key_path}.pub").read_text(encoding="ascii")
        _write_owned(
            self.home / ".ssh" / "authorized_keys", public, entry.pw_uid, entry.pw_gid, 0o600
        )

    def _write_config(self) -> None:
        settings = {
            "Port": str(self.port),
            "ListenAddress": self.host,
            "HostKey": str(self._host_key_path),
            "PidFile": str(self._pid_path),
            "AuthorizedKeysFile": ".ssh/authorized_keys",
            "AllowUsers": self.user,
            "PubkeyAuthentication": "yes",
            "PasswordAuthentication": "no",
            "KbdInteractiveAuthentication": "no",
            "HostbasedAuthentication": "no",
            "PermitRootLogin": "no",
            "PermitEmptyPasswords": "no",
            "UsePAM": "no",
            "StrictModes": "yes",
            "PermitUserEnvironment": "no",
            "AllowAgentForwarding": "no",
            "AllowTcpForwarding": "no",
            "X11Forwarding": "no",
            "PrintMotd": "no",
            "PrintLastLog": "no",
            "UseDNS": "no",
            "MaxStartups": "50:30:100",
            "MaxSessions": "50",
            "LoginGraceTime": "30",
            "LogLevel": "VERBOSE",
        }
        lines = [f"{key} {value}" for key, value in settings.items()]
        lines.append(f"Subsystem sftp {SFTP_SERVER}")
        self._config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self._config_path.chmod(0o600)

    def _launch(self) -> None:
        """Write and check the config for the current port, run sshd in the foreground, wait
        for its banner."""
        self._write_config()
        # Privilege separation directory; Debian's service unit normally creates it.
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        _run([SSHD, "-t", "-f", str(self._config_path)], "sshd -t (config check)")
        self.log_path.touch()
        prefix = self.network.prefix() if self.network is not None else []
        self._process = subprocess.Popen(
            [*prefix, SSHD, "-D", "-f", str(self._config_path), "-E", str(self.log_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        problem = wait_started(self._process, self._banner, timeout=START_TIMEOUT)
        if problem is not None:
            if self._process.poll() is not None:
                self._process = None
            raise SshStartError(self._failure(problem))

    def _banner(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as sock:
                return sock.recv(64).startswith(b"SSH-2.0-")
        except OSError:
            return False

    def _failure(self, problem: str) -> str:
        return (
            f"sshd on port {self.port} {problem}; log {self.log_path}:\n{log_tail(self.log_path)}"
        )

    def _write_known_hosts(self) -> None:
        key_type, key = Path(f"{self._host_key_path}.pub").read_text(encoding="ascii").split()[:2]
        line = f"[{self.host}]:{self.port} {key_type} {key}\n"
        self.known_hosts_path.write_text(line, encoding="ascii")

    def kill_user_processes(self, timeout: float = 5.0) -> list[int]:
        """SIGTERM, then SIGKILL, every process owned by the deploy user (daemons left by a run).

        Only used for users this module created (and holds the lock for). Returns the pids.
        """
        return end_user_processes(self.user, timeout)

    def leftovers(self) -> list[Leftover]:
        """sshd, the deploy user's processes (pm2, the app), the base dir (keys, config, log),
        and once detached the process keeping the user's lock."""
        pids = [self._process.pid] if self._process is not None else []
        sshd = Leftover(
            what=f"sshd for {self.user} on {self.host}:{self.port}",
            processes=processes(pids),
            paths=(str(self.base_dir),),
            user=self.user,
        )
        if self._keeper is None:
            return [sshd]
        keeper = Leftover(what=f"the lock of {self.user}", processes=processes([self._keeper]))
        return [sshd, keeper]

    def _detach(self) -> None:
        """Keep the deploy user's lock held after this process exits: a `sleep` in its own
        session inherits the locked file (a lock lasts while any descriptor of it is open)."""
        if self._lock_fd is not None:
            keeper = subprocess.Popen(
                ["sleep", "infinity"],
                pass_fds=(self._lock_fd,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            self._keeper = keeper.pid
            os.ftruncate(self._lock_fd, 0)
            note = f"{keeper.pid} (keeps the deploy user of a detached SshHost, sshd {self.port})"
            os.pwrite(self._lock_fd, f"{note}\n".encode(), 0)
            os.close(self._lock_fd)
            self._lock_fd = None
        if self._registered:
            with _ACTIVE_LOCK:
                _ACTIVE_USERS.discard(self.user)
            self._registered = False

    def _shutdown(self) -> None:
        """Stop sshd and every process of the deploy user, release the lock."""
        if self._process is not None:
            end_process(self._process, timeout=5)
            self._process = None
        if self._lock_fd is not None:
            self.kill_user_processes()
            os.close(self._lock_fd)
            self._lock_fd = None
        if self._registered:
            with _ACTIVE_LOCK:
                _ACTIVE_USERS.discard(self.user)
            self._registered = False
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"SshHost(user={self.user!r}, port={self.port}, base_dir={self.base_dir})"

    # ----- using it --------------------------------------------------------------------------

    def ssh_argv(self) -> list[str]:
        """`ssh` with this host's key, known_hosts and port, ready for `user@host` and a command."""
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.client_key_path),
            "-p",
            str(self.port),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts_path}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=10",
        ]

    def run(
        self,
        cmd: str,
        *,
        check: bool = False,
        input: str | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run `cmd` as the deploy user over ssh (through its login shell, as pyinfra does).

        Never put a secret in `cmd`: pass it on stdin (`input=`) instead.
        """
        result = subprocess.run(
            [*self.ssh_argv(), f"{self.user}@{self.host}", cmd],
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
            raise subprocess.CalledProcessError(
                result.returncode, f"ssh {self.user}@{self.host}: {cmd}", "\n".join(tail)
            )
        return result

    def inventory_data(self) -> dict[str, Any]:
        """pyinfra host data for this host (ssh connector keys)."""
        return {
            "ssh_hostname": self.host,
            "ssh_port": self.port,
            "ssh_user": self.user,
            "ssh_key": str(self.client_key_path),
            "ssh_known_hosts_file": str(self.known_hosts_path),
            "ssh_strict_host_key_checking": "yes",
            "ssh_allow_agent": False,
            "ssh_look_for_keys": False,
        }

    def inventory_env(self) -> dict[str, str]:
        """The `HANDLED_VPS_*` variables `inventory/rehearsal.py` reads (no secret: a key path)."""
        return {
            "HANDLED_VPS_HOST": self.host,
            "HANDLED_VPS_PORT": str(self.port),
            "HANDLED_VPS_USER": self.user,
            "HANDLED_VPS_KEY": str(self.client_key_path),
            "HANDLED_VPS_KNOWN_HOSTS": str(self.known_hosts_path),
        }

    def write_inventory(
        self,
        path: Path,
        *,
        group: str = "vps",
        name: str = "vps",
        data: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write a pyinfra inventory file: group `group` with one host `name` (ssh to this host).

        Extra `data` is merged into the host data; keep secrets out of it (the file is plain).
        """
        host_data = {**self.inventory_data(), **(data or {})}
        text = (
            '"""pyinfra inventory written by standins.sshd for a stand-in VPS."""\n\n'
            f"{group} = [({name!r}, {host_data!r})]\n"
        )
        path.write_text(text, encoding="utf-8")
        return path


def _write_owned(path: Path, text: str, uid: int, gid: int, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(mode)
    os.chown(path, uid, gid)


def end_user_processes(user: str, timeout: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL after `timeout` seconds, every process of `user`; the pids.

    Only for a deploy user this module created (its home holds MARKER); others are left alone.
    """
    if not user_exists(user):
        return []
    entry = pwd.getpwnam(user)
    if not (Path(entry.pw_dir) / MARKER).exists():
        return []
    pids = _pids_of(entry.pw_uid)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pids_of(entry.pw_uid):
        time.sleep(0.1)
    for pid in _pids_of(entry.pw_uid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def _pids_of(uid: int) -> list[int]:
    """Live (non-zombie) processes whose real uid is `uid`."""
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text(encoding="utf-8")
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("State", "").strip().startswith("Z"):
            continue
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            pids.append(int(entry.name))
    return pids
