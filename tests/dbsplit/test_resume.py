"""`kill -9` at any moment, then the same command again: exact rows, nothing duplicated.

Each case kills the main process (its workers die with it) at a different point: during the
copy after N parts, and at the start of the later steps. While it runs, no process's command
line may hold a password.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.dbsplit.helpers import SplitEnv, assert_targets_equal_source, foreign_keys

MIGRATE = ("migrate", "--drop-cross-db-fks", "--jobs", "2", "--split-larger-than", "256kB")


def _cmdlines() -> list[str]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return out


def _run_and_kill(env: SplitEnv, marker: str, count: int) -> list[str]:
    """Start migrate, SIGKILL it at the ``count``-th stderr line containing ``marker``."""
    proc = env.popen(*MIGRATE, "--no-verify")
    assert proc.stderr is not None
    seen, lines = 0, []
    try:
        for line in proc.stderr:
            lines.append(line)
            if "STEP 3/7" in line:
                leaked = [c for c in _cmdlines() for pw in env.passwords() if pw in c]
                assert leaked == []
            if marker in line:
                seen += 1
                if seen == count:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
    finally:
        proc.wait(timeout=60)
        if proc.stdout:
            proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, "".join(lines)
    time.sleep(0.2)  # let the server notice the dead sessions
    return lines


@pytest.mark.slow
@pytest.mark.parametrize(
    ("marker", "count"),
    [
        ("copied ", 1),
        ("copied ", 12),
        ("STEP 4/7", 1),
        ("STEP 5/7", 1),
        ("STEP 6/7", 1),
    ],
    ids=["copy-1-part", "copy-12-parts", "post-data", "foreign-keys", "sequences"],
)
def test_kill9_then_rerun_is_exact(split_env: SplitEnv, marker: str, count: int) -> None:
    _run_and_kill(split_env, marker, count)
    proc = split_env.run(*MIGRATE)
    assert proc.returncode == 0, proc.stderr
    assert "verify passed" in proc.stderr
    assert_targets_equal_source(split_env)
    assert all(foreign_keys(split_env.connect("primary")).values())
    dup = split_env.query(
        "data",
        "SELECT count(*) - count(DISTINCT (relation, part)) FROM _dbsplit.progress",
    )
    assert dup == [(0,)]
    again = split_env.run(*MIGRATE)
    assert again.returncode == 0
    assert "already complete" in again.stderr


@pytest.mark.slow
def test_kill9_twice_during_copy(split_env: SplitEnv) -> None:
    _run_and_kill(split_env, "copied ", 3)
    _run_and_kill(split_env, "copied ", 4)
    proc = split_env.run(*MIGRATE)
    assert proc.returncode == 0, proc.stderr
    assert_targets_equal_source(split_env)
