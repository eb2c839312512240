"""Process and filesystem helpers: run servers as the unprivileged service user, free ports."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

SERVICE_USER = "handled-test"
"""The unprivileged system user that runs every stand-in server when the tests run as root."""


def is_root() -> bool:
    """Whether this process runs as root (and servers must therefore switch user)."""
    return os.geteuid() == 0


def server_user() -> str:
    """The user the stand-in servers run as: SERVICE_USER under root, else the current user."""
    if is_root():
        return SERVICE_USER
    return pwd.getpwuid(os.geteuid()).pw_name


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on `host` a moment ago (bind port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _service_ids() -> tuple[int, int]:
    """The uid and gid of SERVICE_USER; a clear error when the user does not exist."""
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise RuntimeError(
            f"system user {SERVICE_USER!r} is missing: run `make system-deps` to create it"
        ) from None
    return entry.pw_uid, entry.pw_gid


def user_exists(user: str) -> bool:
    """Whether the OS account `user` exists."""
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def chown_to_service_user(path: Path) -> None:
    """Give `path` to SERVICE_USER when running as root; a no-op otherwise."""
    if is_root():
        uid, gid = _service_ids()
        os.chown(path, uid, gid)


def chown_tree_to_service_user(path: Path) -> None:
    """Give `path` and everything below it to SERVICE_USER when running as root."""
    if not is_root():
        return
    chown_to_service_user(path)
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            chown_to_service_user(Path(root) / name)


def make_base_dir(prefix: str) -> Path:
    """A fresh private directory (mode 0700) under the system temp dir, owned by SERVICE_USER."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o700)
    chown_to_service_user(path)
    return path


def remove_dir(path: Path) -> None:
    """Remove a directory tree made by `make_base_dir`, ignoring what is already gone."""
    shutil.rmtree(path, ignore_errors=True)


def as_service_user(argv: Sequence[str]) -> list[str]:
    """`argv` prefixed with `runuser -u SERVICE_USER --` when root, unchanged otherwise."""
    if is_root():
        _service_ids()
        return ["runuser", "-u", SERVICE_USER, "--", *argv]
    return list(argv)


def write_private_file(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600, owned by SERVICE_USER (for keys and secrets)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)
    chown_to_service_user(path)


def log_tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file, or a note that it is missing."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def process_owner(pid: int) -> str:
    """The user name that owns process `pid` (its real uid, read from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("Uid:"):
            return pwd.getpwuid(int(line.split()[1])).pw_name
    raise RuntimeError(f"process {pid} has no Uid line in /proc")


def wait_started(
    process: subprocess.Popen[Any],
    ready: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.05,
) -> str | None:
    """Poll ``ready()`` until it answers true: None once started, else what went wrong
    ("exited during start-up", or "not ready after ...")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return "exited during start-up"
        if ready():
            return None
        time.sleep(interval)
    return f"not ready after {timeout:.0f}s"


def end_process(process: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM, and SIGKILL if it has not exited within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


#: How many ports a stand-in tries when the one picked for it is taken before it binds.
PORT_ATTEMPTS = 4


class _Listening(Protocol):
    port: int
    log_path: Path


def launch_on_free_port(
    stand_in: _Listening,
    launch: Callable[[], object],
    failure: type[Exception],
    *,
    port_fixed: bool,
    taken: str = "Address already in use",
) -> None:
    """Run `launch()`. When it raises `failure` because the port `free_port` picked was taken
    by someone else before the server bound it (`taken` in the log's tail), give `stand_in` a
    new port and try again, `PORT_ATTEMPTS` times in all. A port the caller fixed is kept."""
    for attempt in range(PORT_ATTEMPTS):
        try:
            launch()
            return
        except failure:
            last = attempt == PORT_ATTEMPTS - 1
            if port_fixed or last or taken not in log_tail(stand_in.log_path, 40):
                raise
            stand_in.port = free_port()
