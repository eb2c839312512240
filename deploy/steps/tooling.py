"""The preflight's tooling: this repository's ``dbsplit`` in a virtualenv on the VPS.

Local only (the fact is the virtualenv's digest marker): the wheel is built here from the
committed sources, uploaded, and installed with boto3, which the Spaces actions use.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pyinfra.api.command import FileUploadCommand
from pyinfra.api.operation import operation
from pyinfra.context import host

from deploy.facts import VenvDigest
from deploy.steps import Commands, clean
from deploy.window import Window

REPO = Path(__file__).resolve().parents[2]
WHEEL_SOURCES = ("pyproject.toml", "README.md", "dbsplit")
"""What the dbsplit wheel is built from."""


def _git(*args: str) -> str | None:
    """``git <args>`` in the repository, or None when that is not a git checkout."""
    try:
        proc = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def dbsplit_digest() -> str:
    """What identifies the dbsplit that ships: the committed tree (``HEAD``) of its sources.

    The deploy ships committed code only: uncommitted edits in the work tree are not deployed.
    Outside a git checkout, a SHA-256 over the files themselves.
    """
    trees = [_git("rev-parse", f"HEAD:{name}") for name in WHEEL_SOURCES]
    if all(trees):
        return hashlib.sha256(" ".join(t or "" for t in trees).encode()).hexdigest()
    digest = hashlib.sha256()
    for path in [REPO / "pyproject.toml", *sorted((REPO / "dbsplit").rglob("*.py"))]:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _export_sources(dest: Path) -> None:
    """The wheel's sources at ``HEAD`` (``git archive``), else as they are on disk."""
    if _git("rev-parse", "HEAD") is not None:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", "HEAD", *WHEEL_SOURCES],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
        return
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(
        REPO / "dbsplit", dest / "dbsplit", ignore=shutil.ignore_patterns("__pycache__")
    )


def build_wheel(out_dir: Path) -> Path:
    """Build the dbsplit wheel from a copy of its sources (the work tree stays clean)."""
    src = out_dir / "src"
    src.mkdir()
    _export_sources(src)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out_dir),
            str(src),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    wheels = sorted(out_dir.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"building the dbsplit wheel failed: {last}")
    return wheels[0]


@operation()
@clean
def dbsplit_installed(window: Window) -> Commands:
    """
    Install this repository's ``dbsplit`` (with boto3) into a virtualenv on the VPS.

    + window: the host's settings (``venv``, ``pip_args``, ``state_dir``)

    Updates: only when the installed package was built from other sources than these.
    """
    s = window.settings
    digest = dbsplit_digest()
    if host.get_fact(VenvDigest, venv=s.venv) == digest:
        host.noop(f"dbsplit {digest[:12]} already installed in {s.venv}")
        return
    build_dir = Path(tempfile.mkdtemp(prefix="handled-dbsplit-wheel-"))
    wheel = build_wheel(build_dir)
    remote_dir = f"{s.state_dir}/wheels"
    remote = f"{remote_dir}/{wheel.name}"
    pip = f"{s.venv}/bin/pip"
    extra = " ".join(shlex.quote(a) for a in s.pip_args)
    yield f"mkdir -p -m 700 {s.state_dir} {remote_dir} && python3 -m venv {s.venv}"
    yield FileUploadCommand(str(wheel), remote)
    yield f"{pip} install -q {extra} --upgrade boto3 {remote}"
    yield f"{pip} install -q {extra} --no-deps --force-reinstall {remote}"
    yield f"printf '%s\\n' {digest} > {s.venv}/.handled-dbsplit-digest"
