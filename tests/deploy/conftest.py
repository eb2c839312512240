"""Fixtures for the deploy's end-to-end tests: one stand-in window per test module.

Tests in a module run in order against the same window (the window is a sequence of states).
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from standins.dbaas import Dbaas
from standins.postgres import PostgresServer
from standins.sshd import DEFAULT_USER
from standins.system import user_exists
from standins.window import Window

PIP_CACHE = Path("/var/cache/handled-standins") / f"{DEFAULT_USER}-pip"
"""A pip cache the deploy user keeps across runs, so the virtualenv installs without downloads."""


def _pip_cache() -> str:
    """`--cache-dir` for the VPS's pip, owned by the deploy user."""
    entry = pwd.getpwnam(DEFAULT_USER) if user_exists(DEFAULT_USER) else None
    PIP_CACHE.mkdir(parents=True, exist_ok=True)
    if entry is not None:
        for root, dirs, files in os.walk(PIP_CACHE):
            for name in [".", *dirs, *files]:
                os.lchown(Path(root) / name, entry.pw_uid, entry.pw_gid)
    return f"--cache-dir={PIP_CACHE}"


@pytest.fixture(scope="module")
def window(
    source_pg: PostgresServer,
    data_pg: PostgresServer,
    dbaas: Dbaas,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Window]:
    """A fresh VPS (app healthy in single mode), PRIMARY database and pool, S3 bucket."""
    report_dir = tmp_path_factory.mktemp("deploy-reports")
    win = Window.start(source_pg=source_pg, data_pg=data_pg, dbaas=dbaas, report_dir=report_dir)
    try:
        win.extra_env["HANDLED_PIP_ARGS"] = _pip_cache()
        yield win
    finally:
        win.stop()
