"""The sshd stand-in: pyinfra's real CLI connects as the deploy user, SFTP works, key only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from standins.sshd import SshHost, SshStartError

PYINFRA = str(Path(sys.executable).with_name("pyinfra"))


def _pyinfra(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYINFRA, "-y", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_pyinfra_exec_runs_as_the_deploy_user(ssh_host: SshHost, tmp_path: Path) -> None:
    inventory = ssh_host.write_inventory(tmp_path / "inventory.py")
    result = _pyinfra(tmp_path, str(inventory), "exec", "--", "whoami")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"[vps] {ssh_host.user}" in result.stdout + result.stderr


def test_pyinfra_puts_files_over_sftp(ssh_host: SshHost, tmp_path: Path) -> None:
    source = tmp_path / "hello.txt"
    source.write_text("hello from the controller\n", encoding="utf-8")
    dest = ssh_host.home / "pyinfra-test" / "hello.txt"
    deploy = tmp_path / "deploy.py"
    deploy.write_text(
        "from pyinfra.operations import files\n"
        f"files.put(name='Upload hello', src={str(source)!r}, dest={str(dest)!r}, mode='640')\n",
        encoding="utf-8",
    )
    inventory = ssh_host.write_inventory(tmp_path / "inventory.py")
    result = _pyinfra(tmp_path, str(inventory), str(deploy))
    assert result.returncode == 0, result.stdout + result.stderr
    assert dest.read_text(encoding="utf-8") == "hello from the controller\n"
    assert dest.owner() == ssh_host.user
    assert dest.stat().st_mode & 0o777 == 0o640


def test_login_environment_finds_the_tools(ssh_host: SshHost) -> None:
    # pyinfra wraps every command in `sh -c`: the PATH must hold in a non-interactive sh too.
    result = ssh_host.run(
        "sh -c 'for t in node pm2 pnpm python3 pg_dump pg_restore psql; do command -v $t; done;"
        " pg_dump --version; python3 --version'"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 9, result.stdout
    assert lines[4] == f"{ssh_host.home}/bin/pg_dump"
    assert lines[7].startswith("pg_dump (PostgreSQL) 17."), lines[7]
    assert lines[8].startswith("Python 3."), lines[8]


def test_only_the_authorised_key_gets_in(ssh_host: SshHost, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
        check=True,
        capture_output=True,
    )
    argv = ssh_host.ssh_argv()
    argv[argv.index("-i") + 1] = str(other)
    result = subprocess.run(
        [*argv, f"{ssh_host.user}@{ssh_host.host}", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr


def test_a_second_host_for_the_same_user_is_refused_at_once(ssh_host: SshHost) -> None:
    with pytest.raises(SshStartError, match="already has a running SshHost"):
        SshHost.start(user=ssh_host.user)


def test_the_rehearsal_inventory_reaches_the_host(ssh_host: SshHost, tmp_path: Path) -> None:
    # The contract with the deploy: `inventory/rehearsal.py` reads the HANDLED_VPS_* variables.
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [PYINFRA, "-y", str(root / "inventory" / "rehearsal.py"), "exec", "--", "id", "-un"],
        cwd=root,
        env={**os.environ, **ssh_host.inventory_env()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"] {ssh_host.user}" in result.stdout + result.stderr
