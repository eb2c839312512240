"""Warm the deploy user's caches from the host's network, before the VPS moves into its own.

Inside the VPS namespace there is no registry: ``pnpm install --frozen-lockfile`` must find
``pg`` in the user's pnpm store, and the dbsplit virtualenv's ``pip install`` must find boto3,
psycopg and rich in a wheelhouse (``--no-index --find-links``). Both are filled here, as the
deploy user, with the ordinary clients (pnpm, the VPS's ``python3 -m pip download``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from standins.host import APP_SOURCE, CACHE_ROOT
from standins.sshd import DEFAULT_USER, MARKER

WHEEL_REQUIREMENTS = ("boto3", "psycopg[binary]>=3.1.18", "rich>=13")
"""What the dbsplit virtualenv installs besides the dbsplit wheel (see pyproject.toml)."""


class WarmError(RuntimeError):
    """A cache could not be filled (no network, a tool missing)."""


def wheelhouse(user: str = DEFAULT_USER) -> Path:
    return CACHE_ROOT / f"{user}-wheels"


def pip_args(user: str = DEFAULT_USER) -> str:
    """``HANDLED_PIP_ARGS`` for installing from the wheelhouse only."""
    return f"--no-index --find-links={wheelhouse(user)}"


def ensure_user(user: str = DEFAULT_USER) -> pwd.struct_passwd:
    """The deploy user, created the way ``standins.sshd`` creates it when missing."""
    try:
        return pwd.getpwnam(user)
    except KeyError:
        pass
    subprocess.run(
        ["useradd", "--create-home", "--shell", "/bin/bash", "--user-group", user],
        check=True,
        capture_output=True,
    )
    entry = pwd.getpwnam(user)
    (Path(entry.pw_dir) / MARKER).write_text("created by standins.sshd\n", encoding="utf-8")
    return entry


def _as_user(entry: pwd.struct_passwd, argv: list[str], cwd: Path, home: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CI": "true",
        "npm_config_update_notifier": "false",
    }
    proc = subprocess.run(
        ["runuser", "-u", entry.pw_name, "--", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        tail = " ".join((proc.stdout + proc.stderr).split()[-40:])
        raise WarmError(f"`{' '.join(argv[:3])}` as {entry.pw_name} failed: {tail}")


def warm(user: str = DEFAULT_USER) -> str:
    """Fill the pnpm store and the wheelhouse; returns what was done (raises WarmError)."""
    entry = ensure_user(user)
    cache = CACHE_ROOT / user
    for sub in ("pnpm-store", "pnpm-cache", "npm"):
        (cache / sub).mkdir(parents=True, exist_ok=True)
    house = wheelhouse(user)
    house.mkdir(parents=True, exist_ok=True)
    CACHE_ROOT.chmod(0o755)
    for path in (cache, house):
        for root, dirs, files in os.walk(path):
            for name in [".", *dirs, *files]:
                os.lchown(Path(root) / name, entry.pw_uid, entry.pw_gid)
    with tempfile.TemporaryDirectory(prefix="handled-warm-") as tmp:
        work = Path(tmp)
        os.chown(work, entry.pw_uid, entry.pw_gid)
        app = work / "app"
        shutil.copytree(
            APP_SOURCE, app, ignore=shutil.ignore_patterns("node_modules", "dist", "logs")
        )
        for root, dirs, files in os.walk(work):
            for name in [".", *dirs, *files]:
                os.lchown(Path(root) / name, entry.pw_uid, entry.pw_gid)
        _as_user(
            entry,
            [
                "pnpm",
                "install",
                "--frozen-lockfile",
                "--prefer-offline",
                f"--store-dir={cache / 'pnpm-store'}",
                f"--cache-dir={cache / 'pnpm-cache'}",
                "--reporter=silent",
            ],
            app,
            work,
        )
        _as_user(
            entry,
            [
                "/usr/bin/python3",
                "-m",
                "pip",
                "download",
                "-q",
                "--disable-pip-version-check",
                f"--dest={house}",
                *WHEEL_REQUIREMENTS,
            ],
            work,
            work,
        )
    wheels = len(list(house.glob("*.whl")))
    return f"pnpm store {cache / 'pnpm-store'} and {wheels} wheels in {house}"
